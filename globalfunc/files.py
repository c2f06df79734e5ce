"""Function files on disk: atomic writes, confinement to a folder, ``__init__.py``, import.

Used by the registry (materialize a stored version), the workspace (regenerate a
package's ``__init__.py``) and the resolver (import and re-import function files). Every
write goes to a temporary file first and is renamed into place, so a reader never sees
half a file; the file gets the mode an ordinary ``open()`` would give it (the process
umask, or the mode of the file it replaces), not the temporary file's 0600. Every target
path is checked to stay inside its folder (symlinks included), so a name can never write
elsewhere. This module does not talk to git or storage.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

from globalfunc.errors import PackageNotFound, PathEscape


def confined(base: Path, *parts: str) -> Path:
    """``base/parts...``, refusing any result that resolves outside ``base``."""
    root = base.resolve()
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        raise PathEscape(
            f"refusing to write {str(target)!r}: it is outside the target folder {str(root)!r}"
        )
    return target


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from ``/proc`` where the kernel offers it, else set and
    restored under a lock, as ``os.umask`` is the only portable way to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file and an atomic rename.

    The file's mode is that of the file it replaces, else ``0666`` less the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def init_py_text(package_dir: Path) -> str:
    """The ``__init__.py`` for a package folder: sub-packages, then ``from .f import f`` per file."""
    subpackages: list[str] = []
    functions: list[str] = []
    for entry in os.scandir(package_dir):
        name = entry.name
        if name.startswith((".", "_")):
            continue
        if entry.is_dir() and name.isidentifier():
            subpackages.append(name)
        elif name.endswith(".py") and entry.is_file() and name[:-3].isidentifier():
            functions.append(name[:-3])
    lines = [f"from . import {name}\n" for name in sorted(subpackages)]
    lines += [f"from .{name} import {name}\n" for name in sorted(functions)]
    return "".join(lines)


def write_init_py(package_dir: Path) -> Path:
    """(Re)write ``package_dir/__init__.py`` deterministically; return its path."""
    if not package_dir.is_dir():
        raise PackageNotFound(f"package folder {str(package_dir)!r} does not exist")
    path = package_dir / "__init__.py"
    text = init_py_text(package_dir)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_atomic(path, text)
    return path


def import_file(module_name: str, file: Path) -> ModuleType:
    """Import ``file`` as module ``module_name`` (registered in ``sys.modules`` only if it runs)."""
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {str(file)!r} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def forget_modules(top: str) -> list[ModuleType]:
    """Drop ``top`` and its sub-modules from ``sys.modules`` and their bytecode caches.

    The bytecode cache is checked by the source's mtime in whole seconds and its size, so
    an edit within the same second that keeps the size would otherwise import the old
    code again. Returns the modules dropped.
    """
    dropped = [m for n, m in list(sys.modules.items()) if n == top or n.startswith(top + ".")]
    for module in dropped:
        sys.modules.pop(module.__name__, None)
        source = getattr(module, "__file__", None)
        if source and source.endswith(".py"):
            # a read-only tree or no cache: the mtime check still applies
            with contextlib.suppress(OSError, NotImplementedError, ValueError):
                Path(importlib.util.cache_from_source(source)).unlink(missing_ok=True)
    importlib.invalidate_caches()
    return dropped


def reload_from(root: Path, package: str) -> ModuleType:
    """Import ``package`` from folder ``root`` anew, forgetting earlier imports of it."""
    top = package.split(".")[0]
    forget_modules(top)
    root_str = str(root)
    if root_str not in sys.path:
        sys.path.insert(0, root_str)
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise PackageNotFound(
            f"cannot import package {package!r} from {root_str!r}: {exc}"
        ) from exc
