"""Turn a call name (``Base.to_pickle``) into the callable it names, from one of three roots.

- an imported package module (the seed's ``import GlobalFunc as funcs``): attributes are
  followed only through sub-modules of that package, and the last one must be a function
  defined inside it;
- a packages directory: ``<dir>/<Package>/<func>.py`` is imported as ``Package.func``;
- a :class:`~globalfunc.registry.Registry`: the stored version is written, hash-checked,
  into a content-addressed cache folder and imported from there, so a machine needs only
  the registry, not the git checkout.

Only validated names resolve (no dunders, no private names, no walking into module globals
or attributes of the function). A directory root is put on ``sys.path`` (its packages are
imported by their top-level names, as the seed did), so two roots in one process should
not hold packages of the same name: the second one is refused with a clear error.
Resolutions are cached; :meth:`Resolver.invalidate` forgets them and
:meth:`Resolver.reload` re-imports a package (or, given the root's own name, as in the
seed's ``_reload_package("GlobalFunc")``, everything under the root) so that edited files
run their new code.

This is core: the facades (``gfgo``), the executors and the servers use it; it imports
nothing from them, and nothing from git.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from globalfunc.errors import FunctionNotFound, PackageNotFound
from globalfunc.files import forget_modules, import_file, reload_from
from globalfunc.naming import CallName, parse_call_name
from globalfunc.record import FunctionRecord
from globalfunc.registry import Registry

__all__ = ["Resolver", "Root", "default_cache_dir"]

Root = ModuleType | str | Path | Registry


def default_cache_dir() -> Path:
    """Where registry functions are materialized when no folder is given.

    Per user (``~/.cache/globalfunc``), never a shared temp folder, where another user
    could plant a file for us to import.
    """
    return Path.home() / ".cache" / "globalfunc" / "functions"


class Resolver:
    """Resolves call names against one root, caching what it found."""

    def __init__(
        self, root: Root, *, cache_dir: str | Path | None = None, branch: str | None = None
    ) -> None:
        self.root = root
        self.branch = branch
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._cache: dict[str, Callable[..., Any]] = {}
        self._records: dict[str, FunctionRecord] = {}
        self._lock = threading.Lock()
        if isinstance(root, str | Path) and not Path(root).is_dir():
            raise PackageNotFound(f"packages folder {str(root)!r} does not exist")

    def resolve(self, name: str | CallName) -> Callable[..., Any]:
        """The callable a validated call name names; raises ``InvalidName``/``FunctionNotFound``."""
        call = parse_call_name(name) if isinstance(name, str) else name
        key = str(call)
        func = self._cache.get(key)
        if func is not None:
            return func
        with self._lock:
            func = self._cache.get(key)
            if func is None:
                func = self._load(call)
                self._cache[key] = func
        return func

    def record(self, name: str | CallName) -> FunctionRecord | None:
        """The registry record a name resolved to (registry roots only)."""
        return self._records.get(str(name))

    def invalidate(self, package: str | None = None) -> None:
        """Forget cached resolutions (of one package, or all)."""
        with self._lock:
            for key in list(self._cache):
                if package is None or key.rsplit(".", 1)[0] == package:
                    del self._cache[key]
                    self._records.pop(key, None)

    def reload(self, package: str) -> None:
        """Re-import a package so edited files run their new code.

        ``package`` is a package of the root (``Base``), or the root's own name (a module
        root's ``__name__``, a directory root's folder name): then every package imported
        from the root is re-imported. A registry root forgets the package's versions.
        """
        if isinstance(self.root, ModuleType):
            whole = package == self.root.__name__
            self.invalidate(None if whole else package)
            if whole or sys.modules.get(self.root.__name__) is self.root:
                _reload_submodule(self.root, package)
        elif isinstance(self.root, str | Path):
            root = Path(self.root).resolve()
            if package == root.name and not (root / package).is_dir():
                self.invalidate(None)
                for top in _packages_imported_from(root):
                    reload_from(root, top)
            else:
                self.invalidate(package)
                if root.joinpath(*package.split(".")).is_dir():
                    reload_from(root, package)
        else:
            self.invalidate(package)

    # -- loading -------------------------------------------------------------------------
    def _load(self, call: CallName) -> Callable[..., Any]:
        if isinstance(self.root, Registry):
            return self._from_registry(call)
        if isinstance(self.root, ModuleType):
            return _from_module(self.root, call)
        return _from_directory(Path(self.root), call)

    def _from_registry(self, call: CallName) -> Callable[..., Any]:
        assert isinstance(self.root, Registry)
        record = self.root.get(call, branch=self.branch).verify()
        folder = self.cache_dir / record.sha256
        file = folder.joinpath(*call.package.split("."), f"{call.func}.py")
        if not file.exists() or file.read_bytes() != record.code.encode("utf-8"):
            self.root.materialize(call, folder, record=record)
        module_name = f"_gf_{record.sha256[:16]}_{call.func}"
        module = sys.modules.get(module_name) or import_file(module_name, file)
        self._records[str(call)] = record
        return _defined_function(module, call)


def _defined_function(module: ModuleType, call: CallName) -> Callable[..., Any]:
    func = module.__dict__.get(call.func)
    if not inspect.isfunction(func) or func.__module__ != module.__name__:
        raise FunctionNotFound(f"{call} is not a function defined in its file")
    return func


def _from_directory(root: Path, call: CallName) -> Callable[..., Any]:
    file = root.joinpath(*call.package.split("."), f"{call.func}.py")
    if not file.is_file():
        raise FunctionNotFound(f"no function {call}: {str(file)!r} does not exist", name=str(call))
    root_str = str(root.resolve())
    if root_str not in sys.path:
        sys.path.insert(0, root_str)
    try:
        module = importlib.import_module(f"{call.package}.{call.func}")
    except ModuleNotFoundError as exc:
        raise FunctionNotFound(f"cannot import {call} from {root_str!r}: {exc}") from exc
    if not str(Path(module.__file__ or "").resolve()).startswith(root_str):
        raise FunctionNotFound(
            f"{call.package!r} resolves to {module.__file__!r}, outside {root_str!r}; "
            "another installed module has the same name"
        )
    return _defined_function(module, call)


def _from_module(root: ModuleType, call: CallName) -> Callable[..., Any]:
    obj: Any = root
    prefix = root.__name__ + "."
    for part in call.package.split("."):
        obj = getattr(obj, part, None)
        if not isinstance(obj, ModuleType) or not obj.__name__.startswith(prefix):
            raise FunctionNotFound(f"{root.__name__} has no package {call.package!r}")
    func = getattr(obj, call.func, None)
    if not inspect.isfunction(func) or not func.__module__.startswith(prefix):
        raise FunctionNotFound(f"{root.__name__} has no function {call}")
    return func


def _packages_imported_from(root: Path) -> list[str]:
    """Top-level modules in ``sys.modules`` whose files are under ``root``."""
    found = []
    for name, module in list(sys.modules.items()):
        source = getattr(module, "__file__", None)
        if "." in name or not source:
            continue
        if Path(source).resolve().is_relative_to(root):
            found.append(name)
    return found


def _reload_submodule(root: ModuleType, package: str) -> None:
    """Re-import ``root.<package>`` (and its modules) and rebind it on ``root``; given the
    root's own name, re-import every sub-module and then the root itself, in place."""
    if package == root.__name__:
        prefix = root.__name__ + "."
        loaded = sorted(
            (m for m in sys.modules if m.startswith(prefix)), key=lambda m: m.count(".")
        )
        for name in loaded:
            forget_modules(name)
            owner, _, attr = name.rpartition(".")
            if owner == root.__name__ and isinstance(getattr(root, attr, None), ModuleType):
                delattr(root, attr)  # the old module must not survive as an attribute
        importlib.reload(root)
        for name in loaded:  # what was imported before is imported again, from the new files
            if name not in sys.modules:
                with contextlib.suppress(ModuleNotFoundError):  # a deleted file stays gone
                    importlib.import_module(name)
        return
    full = f"{root.__name__}.{package}"
    forget_modules(full)
    module = importlib.import_module(full)
    parent = root
    *path, last = package.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, last, module)
