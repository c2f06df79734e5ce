"""Stand-ins for the ``aiges`` SDK and ``aiges_embed`` modules that wrapper files import.

:func:`install` registers them in ``sys.modules`` so an unchanged ``wrapper.py`` imports::

    aiges.sdk         WrapperBase, *ParamField, *BodyField      (compat.sdk)
    aiges.dto         DataListNode, DataListCls, ResponseData,
                      Response, SessionCreateResponse, callback  (compat.dto)
    aiges.callback    callback                                   (compat.dto)
    aiges.core.types  data type / status constants               (compat.types)
    aiges.types       the same, older name                       (compat.types)
    aiges.utils.log   log, getFileLogger                         (compat.log)
    aiges.stream      StreamHandleThread, SessionManager         (compat.stream)
    aiges_embed       the dto names, as the C++ host provides    (server.aiges._embed,
                      built from native/aiges/embed.cc; compat.dto when not built)

A really installed ``aiges`` (or ``aiges_embed``) is never shadowed: each family is only
registered when ``importlib.util.find_spec`` cannot find the real one.
"""

from __future__ import annotations

import importlib.util
import sys
import types as pytypes
from types import ModuleType

from server.aiges.compat import dto, log, sdk, stream
from server.aiges.compat import types as aiges_types

__all__ = ["embed_module", "install", "installed_names"]

_ALIASES: dict[str, ModuleType] = {
    "aiges.sdk": sdk,
    "aiges.dto": dto,
    "aiges.callback": dto,
    "aiges.core.types": aiges_types,
    "aiges.types": aiges_types,
    "aiges.utils.log": log,
    "aiges.stream": stream,
}
_PACKAGES = ("aiges", "aiges.core", "aiges.utils")


def _missing(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def install() -> list[str]:
    """Register the stand-in modules that are not really installed; returns the names added."""
    added: list[str] = []
    if _missing("aiges"):
        for name in _PACKAGES:
            package = pytypes.ModuleType(name, f"GlobalFunc stand-in for the {name} package")
            package.__path__ = []
            sys.modules[name] = package
            added.append(name)
        for name, module in _ALIASES.items():
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)
            added.append(name)
    if _missing("aiges_embed"):
        sys.modules["aiges_embed"] = embed_module()
        added.append("aiges_embed")
    return added


def embed_module() -> ModuleType:
    """``aiges_embed``: the C++ module when built (zero-copy request data), else ``dto``.

    With ``GF_REQUIRE_NATIVE=1`` a missing C++ module raises instead of falling back.
    """
    try:
        return importlib.import_module("server.aiges._embed")
    except ImportError as exc:
        from server.aiges.native import missing_part

        missing_part("server.aiges._embed", exc)
        return dto


def installed_names() -> list[str]:
    """Which of the stand-in module names are currently served by this package."""
    ours = {id(m) for m in (dto, log, sdk, stream, aiges_types)}
    native = sys.modules.get("server.aiges._embed")
    if native is not None:
        ours.add(id(native))
    return sorted(
        name
        for name in (*_PACKAGES, *_ALIASES, "aiges_embed")
        if name in sys.modules
        and (
            id(sys.modules[name]) in ours
            or "GlobalFunc stand-in" in (sys.modules[name].__doc__ or "")
        )
    )
