"""Function files on disk: atomic writes, confinement to a folder, ``__init__.py``, import.

Used by the registry (materialize a stored version) and the workspace (regenerate a
package's ``__init__.py``). Every write goes to a temporary file first and is renamed into
place, so a reader never sees half a file; every target path is checked to stay inside its
folder (symlinks included), so a name can never write elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
