"""The Python half of ``libwrapper.so``, the loader's C mode (``AIGES_PLUGIN_MODE=c``).

``native/aiges/libwrapper.cc`` exports the 15 C functions the loader calls; it embeds
CPython (or joins the interpreter already running in the process) and drives one
:class:`Host` made here. The host picks the engine from the ``[wrapper]`` config the
loader passes to ``wrapperInit``, then answers through :class:`~server.aiges.native.Bridge`,
the object the C++ gRPC server calls too, so both paths run user code by the same rules
and return byte-identical results:

``wrapper.file``      the wrapper module: a ``.py`` path, or a module name found in the
                      working folder or on ``PYTHONPATH`` (default ``wrapper``);
``wrapper.class``     its class (default ``Wrapper``);
``wrapper.function``  a registry function (e.g. ``Base.inverse_time_str``) instead of a file,
                      looked up under ``wrapper.root`` (default ``packages``);
``wrapper.workers``   threads running ``wrapperExecAsync`` calls (read by the C++ side);
``wrapper.log_file``, ``wrapper.log_level``  logging, when this library started Python.

Request data arrives as :class:`aiges_embed.Buffer` views of the loader's memory (no copy).
C strings (param keys/values, data keys, desc, usrTag) arrive decoded as UTF-8 with
``"replace"``. A session's ``tag`` here is its own key (``"<usrTag>#<n>"``), by which its
pushed results reach that session only; the wrapper itself is shown the loader's usrTag
(the same bytes as through the gRPC plugin), and a result it pushes by that usrTag goes to
the newest live session with it. ``ERRORS`` texts are also compiled
into the library as static strings (a test compares them).
This module does not touch C memory; converting to and from the C structs is the C++ side's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.aiges import compat
from server.aiges.engine import (
    EXEC_FAILED,
    INIT_FAILED,
    USER_INIT_FAILED,
    Emit,
    Engine,
    Frame,
    Outcome,
)
from server.aiges.launch import PluginError, build_engine, default_wrapper
from server.aiges.native import Bridge, Item

__all__ = ["ERRORS", "Host", "engine_from_config"]

log = logging.getLogger(__name__)

ERRORS = {
    INIT_FAILED: "the wrapper is not loaded or not initialised (wrapperInit failed or not called)",
    USER_INIT_FAILED: "the wrapper's wrapperInit failed",
    EXEC_FAILED: "the wrapper's call raised, returned nothing, or returned an invalid result",
}
"""``wrapperError`` texts for the codes GlobalFunc itself answers with."""


def _wrapper_file(name: str) -> Path:
    """``wrapper.file`` as a path: a ``.py`` path as given, else a module in cwd/PYTHONPATH."""
    if name.endswith(".py") or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise PluginError(f"wrapper.file {name!r} is not a file; give the wrapper's .py path")
        return path.resolve()
    if name == "wrapper":
        return default_wrapper(os.getcwd(), os.environ.get("PYTHONPATH", ""))
    folders = [
        Path.cwd(),
        *(Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p),
    ]
    for folder in folders:
        if (folder / f"{name}.py").is_file():
            return (folder / f"{name}.py").resolve()
    raise PluginError(
        f"wrapper.file {name!r}: no {name}.py in the working folder or on PYTHONPATH "
        f"(looked in: {', '.join(map(str, folders))})"
    )


def engine_from_config(config: dict[str, str], *, isolate: bool) -> Engine:
    """The engine the ``[wrapper]`` config names (see the module docstring)."""
    function = config.get("wrapper.function", "")
    if function:
        return build_engine(function=function, root=config.get("wrapper.root") or None)
    from server.aiges.wrapper_host import WrapperEngine

    name = config.get("wrapper.file", "") or "wrapper"
    path = _wrapper_file(name)
    module = path.stem if name.endswith(".py") or os.sep in name else name
    return WrapperEngine(
        path, module, config.get("wrapper.class", "") or "Wrapper", isolate_imports=isolate
    )


class Host(Bridge):
    """What ``libwrapper.so`` calls (with the GIL held); see the module docstring.

    ``owns_interpreter``: this library started Python (the loader's process), so the
    wrapper's own ``server`` module may win over ours, and logging is set up here.
    The engine is made by :meth:`init` from the config; until then every call answers
    ``INIT_FAILED``.
    """

    def __init__(self, owns_interpreter: bool) -> None:
        compat.install()  # aiges_embed (C++ when built) and the aiges stand-ins
        self.owns_interpreter = owns_interpreter
        self._emit: Callable[[str, int, list[Item]], None] | None = None
        super().__init__(_Unloaded())

    def bind(self, emit: Callable[[str, int, list[Item]], None]) -> None:
        self._emit = emit
        super().bind(emit)

    def init(self, config: dict[str, str]) -> int:
        if self.owns_interpreter:
            _configure_logging(config)
        try:
            self.engine = engine_from_config(config, isolate=self.owns_interpreter)
        except Exception as exc:
            log.error("wrapperInit: %s", exc)
            return INIT_FAILED
        if self._emit is not None:
            super().bind(self._emit)  # session results of the new engine
        return super().init(config)

    def create(
        self, params: dict[str, str], sid: str, tag: str, usr_tag: str | None = None
    ) -> tuple[str, int]:
        """``tag`` is the session's own key (``"<usrTag>#<n>"``), by which its results come
        back; a wrapper engine is shown ``usr_tag``, the loader's usrTag, as in the gRPC
        plugin (a function engine gets the key only)."""
        engine = self.engine
        # by attribute, not isinstance: an isolated wrapper may have re-imported our modules
        if usr_tag is None or not getattr(engine, "takes_usr_tag", False):
            return super().create(params, sid, tag)
        try:
            create: Callable[..., tuple[str, int]] = engine.create
            handle, code = create(params, sid, tag, usr_tag=usr_tag)
        except Exception:
            log.exception("create failed (tag %s)", usr_tag)
            return "", EXEC_FAILED
        return str(handle), int(code)

    def error_text(self, code: int) -> str:
        """``wrapperError``: ours, else what the wrapper's own ``wrapperError`` says."""
        if code in ERRORS:
            return ERRORS[code]
        instance = getattr(self.engine, "instance", None)
        method = getattr(instance, "wrapperError", None)
        if method is not None:
            try:
                return str(method(code))
            except Exception:
                log.exception("wrapperError(%d) raised", code)
        return f"error {code}"

    def fini(self) -> int:
        try:
            return int(self.engine.fini() or 0)
        except Exception:
            log.exception("wrapperFini failed")
            return EXEC_FAILED


class _Unloaded:
    """The engine before ``wrapperInit``: every call answers ``INIT_FAILED``."""

    def bind(self, emit: Emit) -> None:
        pass

    def init(self, config: dict[str, str]) -> int:
        return INIT_FAILED

    def schema(self, service_id: str) -> dict[str, Any]:
        return {}

    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        return Outcome.failure(INIT_FAILED, "wrapperExec before a successful wrapperInit")

    def create(self, params: dict[str, str], sid: str, tag: str) -> tuple[str, int]:
        return "", INIT_FAILED

    def write(self, handle: str, frames: list[Frame], sid: str) -> int:
        return INIT_FAILED

    def destroy(self, handle: str) -> int:
        return INIT_FAILED

    def fini(self) -> int:
        return 0


def _configure_logging(config: dict[str, str]) -> None:
    handler: logging.Handler = (
        logging.FileHandler(config["wrapper.log_file"])
        if config.get("wrapper.log_file")
        else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((config.get("wrapper.log_level") or "INFO").upper())
