"""Importing a user's ``wrapper.py`` so that the user's own modules win over ours.

GlobalFunc's top-level packages (``server``, ``globalfunc``, ``gfbase``, ``gfgo``) have
names user projects use too. In the plugin process, :func:`step_aside` moves our import
root behind the user's and hides our packages the wrapper's folder also has;
:func:`load_wrapper_module` imports the wrapper with its folder first on ``sys.path``, as
the loader does. What it does not do: host the wrapper (:mod:`server.aiges.wrapper_host`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from globalfunc.files import import_file
from server.aiges import compat

__all__ = ["OUR_PACKAGE", "OUR_PACKAGES", "OUR_ROOT", "load_wrapper_module", "step_aside"]

OUR_PACKAGE = __name__.split(".")[0]
"""Our top-level package (``server``): a name user projects use for their own modules too."""
OUR_PACKAGES = (OUR_PACKAGE, "globalfunc", "gfbase", "gfgo")
"""Every top-level package of ours a user's module of the same name must win over."""
OUR_ROOT = Path(__file__).resolve().parents[2]
"""The folder our top-level package is imported from."""


def step_aside(user_dir: str | Path | None = None) -> list[str]:
    """Let a wrapper's own modules win over ours; returns what was hidden.

    For the plugin process only, once everything of ours it runs is imported: our import
    root moves to the end of ``sys.path``, and each package of ours that the wrapper's
    folder also has (``server``, ``globalfunc``, ``gfbase``, ``gfgo``, as a module or a
    package; ``server`` always, it is the common name) leaves ``sys.modules``: our modules
    keep working through the references they already hold, and a wrapper's
    ``from globalfunc import X`` finds the user's module first. Without one, it finds ours.
    """
    folder = Path(user_dir) if user_dir is not None else None
    names = [
        pkg
        for pkg in OUR_PACKAGES
        if pkg == OUR_PACKAGE
        or (folder is not None and ((folder / f"{pkg}.py").is_file() or (folder / pkg).is_dir()))
    ]
    hidden = [n for n in sys.modules for pkg in names if n == pkg or n.startswith(pkg + ".")]
    for name in hidden:
        del sys.modules[name]
    ours = [entry for entry in sys.path if _is_our_root(entry)]
    if ours:
        sys.path[:] = [entry for entry in sys.path if not _is_our_root(entry)] + [str(OUR_ROOT)]
    importlib.invalidate_caches()
    return hidden


def _is_our_root(entry: str) -> bool:
    try:
        return Path(entry or ".").resolve() == OUR_ROOT
    except OSError:
        return False


def load_wrapper_module(
    path: str | Path, module_name: str = "wrapper", *, isolate: bool = False
) -> Any:
    """Import ``path`` (a ``wrapper.py`` or the directory holding it) as ``module_name``.

    ``isolate`` (the plugin process) first lets the user's modules win over ours
    (:func:`step_aside`); in a process that still imports ``server`` lazily (the HTTP
    server, tests) leave it off.
    """
    target = Path(path)
    file = target / f"{module_name}.py" if target.is_dir() else target
    if not file.is_file():
        raise FileNotFoundError(
            f"no wrapper file at {file}; pass the wrapper directory or its .py file"
        )
    compat.install()
    if isolate:
        step_aside(file.parent)
    folder = str(file.parent.resolve())
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)  # the wrapper's own sibling modules import first, as in the loader
    return import_file(module_name, file)
