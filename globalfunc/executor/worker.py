"""What runs inside a worker process: serve call frames on stdin/stdout until EOF.

:func:`worker_main` is the entry point the pool starts with ``python -c`` (as a child of
:mod:`globalfunc.executor.child`: no ``GF_*`` settings, maybe another user, a memory cap
already set from outside). It moves the protocol off fds 0 and 1 (so a function's prints
go to stderr), ignores SIGINT, says ready, then answers one request at a time: arguments
checked against the signature, the result serialized here, a user's exception sent back
as an error dict. A ``MemoryError`` is reported and the worker exits so the pool replaces it.

Where functions come from: a request may carry the function's stored source
(``code``: sha256 and text), which is compiled into a module named after its hash and
kept for later calls of that version; this worker never opens a registry. Without code,
names resolve from the configured packages folder.

What it does not do: enforce deadlines or restart itself (the pool kills and replaces
it), or import the pool or tornado. Start-up stays cheap: asyncio is loaded only when a
function returns an awaitable.
"""

from __future__ import annotations

import inspect
import linecache
import os
import signal
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import ExecutionError, FunctionNotFound, GlobalFuncError, WorkerCrashed
from globalfunc.executor.base import ArgSpec, _FunctionCache, _run_coroutine, _user_error
from globalfunc.executor.frame import (
    _ERR,
    _ERR_EXITING,
    _HEADER,
    _OK,
    _READY,
    _read_exact,
    _write_frame,
)

if TYPE_CHECKING:
    from globalfunc.resolve import Resolver

__all__ = ["worker_main"]


def worker_main(config_json: str) -> int:
    """Entry point of one worker process: serve call frames on stdin/stdout until EOF."""
    config = orjson.loads(config_json)
    proto_in, proto_out = os.dup(0), os.dup(1)
    # The function's own prints must not corrupt the protocol: fd 1 becomes stderr.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _not_dumpable()
    _exit_with_parent()
    functions = _Functions(config.get("packages_dir"))
    debug = bool(config.get("debug"))
    limit = config.get("memory_limit_mb")
    out = os.fdopen(proto_out, "wb", buffering=0)
    inp = os.fdopen(proto_in, "rb")  # buffered: a frame's header and body in one read
    try:
        return _serve_frames(inp, out, functions, debug, limit)
    except BrokenPipeError:  # the pool went away: nothing left to answer
        return 0


def _serve_frames(inp: Any, out: Any, functions: _Functions, debug: bool, limit: int | None) -> int:
    _write_frame(out, _READY)
    while True:
        header = _read_exact(inp, 4)
        if header is None:
            return 0
        body = _read_exact(inp, _HEADER.unpack(header)[0])
        if body is None:
            return 0
        frame, exiting = _serve_one(body, functions, debug, limit)
        _write_frame(out, frame)
        if exiting:
            os._exit(0)


def _exit_with_parent() -> None:
    """End this worker when the server that started it is gone (a SIGKILLed server's worker
    would otherwise run a hung call on, orphaned). A daemon thread: the call loop never
    waits for it."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="gf-parent-watch", daemon=True).start()


def _not_dumpable() -> None:
    """Other processes of our user may not ptrace this one or read its ``/proc`` files
    (a function in a sibling worker cannot read the calls this one runs)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):  # not Linux
        pass


class _Functions:
    """The functions this worker holds: sent as code (by hash) or imported from a folder."""

    def __init__(self, packages_dir: str | None) -> None:
        self.packages_dir = packages_dir
        self.by_name: dict[str, tuple[str, Callable[..., Any], ArgSpec]] = {}
        self._folder: _FunctionCache | None = None

    def get(
        self, name: str, version: str | None, code: dict[str, str] | None
    ) -> tuple[Callable[..., Any], ArgSpec]:
        if code is not None:
            func = _compile(name, code["sha256"], code["text"])
            spec = ArgSpec(name, func)
            self.by_name[name] = (code["sha256"], func, spec)
            return func, spec
        held = self.by_name.get(name)
        if held is not None and (version is None or held[0] == version):
            return held[1], held[2]
        if self.packages_dir is None:
            raise FunctionNotFound(f"the worker was not sent the code of {name}", name=name)
        if self._folder is None:
            self._folder = _FunctionCache(_folder_resolver(self.packages_dir))
        return self._folder.prepare(name, version, trust_cache=True)


def _compile(name: str, sha256: str, text: str) -> Callable[..., Any]:
    """Run a stored version's source as a module of its own; its function ``name``'s last part."""
    func_name = name.rsplit(".", 1)[1]
    module_name = f"_gf_{sha256[:16]}_{func_name}"
    module = sys.modules.get(module_name)
    if module is None:
        filename = f"<gf {name}@{sha256[:12]}>"
        lines = text.splitlines(keepends=True)
        linecache.cache[filename] = (len(text), None, lines, filename)  # tracebacks show code
        module = types.ModuleType(module_name)
        module.__file__ = filename
        sys.modules[module_name] = module
        try:
            exec(compile(text, filename, "exec"), module.__dict__)
        except BaseException:
            del sys.modules[module_name]
            raise
    func = module.__dict__.get(func_name)
    if not inspect.isfunction(func) or func.__module__ != module_name:
        raise FunctionNotFound(f"{name} is not a function defined in its file", name=name)
    return func


def _folder_resolver(packages_dir: str) -> Resolver:
    from globalfunc.resolve import Resolver

    return Resolver(packages_dir)


def _serve_one(
    body: bytes,
    functions: _Functions,
    debug: bool,
    limit: int | None,
) -> tuple[bytes, bool]:
    name = "?"
    out_of_memory = False
    try:
        request = jsoncodec.loads(body)
        name = str(request["name"])
        try:
            func, spec = functions.get(name, request.get("version"), request.get("code"))
        except GlobalFuncError:
            raise
        except Exception as exc:  # the stored source does not even import
            raise _user_error(name, exc, debug) from exc
        args, kwargs = request["args"], request["kwargs"]
        spec.check(args, kwargs)
        try:
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = _run_coroutine(result)
        except MemoryError:
            out_of_memory = True
        except BaseException as exc:  # KeyboardInterrupt, GeneratorExit...: the function's
            raise _user_error(name, exc, debug) from exc
        if not out_of_memory:
            return _OK + jsoncodec.dumps(result, tagged=bool(request.get("tagged", True))), False
    except MemoryError:
        out_of_memory = True
    except GlobalFuncError as exc:
        return _ERR + orjson.dumps({"error": exc.to_dict()}), False
    except Exception as exc:  # the protocol itself failed: report, keep serving
        err = ExecutionError(f"worker could not run {name}: {type(exc).__name__}: {exc}")
        return _ERR + orjson.dumps({"error": err.to_dict()}), False
    # Memory is gone with the frames above; say so and exit so a fresh worker takes over.
    crashed = WorkerCrashed(
        f"{name} exceeded the worker memory cap of {limit} MiB and was stopped; the worker "
        "was replaced",
        function=name,
        exit="memory cap",
    )
    return _ERR_EXITING + orjson.dumps({"error": crashed.to_dict()}), True
