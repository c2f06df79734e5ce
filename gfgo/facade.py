"""The GFGo facade: the seed's names (``_exe_func_kwargs``, ...) over :class:`Resolver`.

Calls here run in the caller's process with no isolation: for trusted code. The server's
isolating executor (``globalfunc.executor``) is the path for anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from globalfunc.errors import InvalidRequest, PackageNotFound
from globalfunc.resolve import Resolver, Root

# One resolver per root, so repeated seed-style calls reuse resolutions. A resolver keeps
# its root alive, so an id() key is never reused while its entry exists.
_RESOLVERS: dict[object, Resolver] = {}


def _resolver_for(root: Root) -> Resolver:
    key: object = str(Path(root).resolve()) if isinstance(root, str | Path) else id(root)
    found = _RESOLVERS.get(key)
    if found is None:
        found = _RESOLVERS[key] = Resolver(root)
    return found


def get_func_by_para(some_func_pack: Root, full_func_name: str) -> Callable[..., Any]:
    """The seed's lookup: ``get_func_by_para(funcs, "Base.to_pickle")`` returns the function."""
    return _resolver_for(some_func_pack).resolve(full_func_name)


class GFGo:
    """Call functions by ``"Package.func"`` name against a root (module, folder or Registry)."""

    def __init__(self, root: Root | None = None, *, resolver: Resolver | None = None) -> None:
        if resolver is None and root is not None:
            resolver = Resolver(root)
        self.resolver = resolver

    def _resolver(self, root: Root | None) -> Resolver:
        if root is not None:
            return _resolver_for(root)
        if self.resolver is None:
            raise InvalidRequest("GFGo has no root: pass global_func=..., or GFGo(root)")
        return self.resolver

    def call(self, name: str, /, **kwargs: Any) -> Any:
        """Call ``name`` with keyword arguments (the house convention)."""
        return self._resolver(None).resolve(name)(**kwargs)

    def call_args(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        """Call ``name`` with positional (and optional keyword) arguments."""
        return self._resolver(None).resolve(name)(*args, **(kwargs or {}))

    def reload(self, package: str) -> None:
        """Re-import a package so edited files take effect; cached resolutions are dropped."""
        self._resolver(None).reload(package)

    # -- the seed's names ----------------------------------------------------------------
    @staticmethod
    def _exe_func_args(
        global_func: Root | None = None,
        pack_func: str | None = None,
        args: Sequence[Any] | None = None,
    ) -> Any:
        if global_func is None or pack_func is None:
            raise InvalidRequest("_exe_func_args needs global_func and pack_func")
        return get_func_by_para(global_func, pack_func)(*(args or ()))

    @staticmethod
    def _exe_func_kwargs(
        global_func: Root | None = None,
        pack_func: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        if global_func is None or pack_func is None:
            raise InvalidRequest("_exe_func_kwargs needs global_func and pack_func")
        return get_func_by_para(global_func, pack_func)(**(kwargs or {}))

    @staticmethod
    def _reload_package(package_name: str, global_func: Root | None = None) -> None:
        """Reload a package; with ``global_func`` given, also forget its cached resolutions."""
        if global_func is not None:
            _resolver_for(global_func).reload(package_name)
            return
        reloaded = 0
        for resolver in list(_RESOLVERS.values()):
            try:  # every root seen so far; only the ones that hold the package reload it
                resolver.reload(package_name)
            except (PackageNotFound, ModuleNotFoundError):
                continue
            reloaded += 1
        if _RESOLVERS and not reloaded:
            raise PackageNotFound(f"no root used so far holds a package {package_name!r}")
