"""What runs inside a worker process: serve call frames on stdin/stdout until EOF.

:func:`worker_main` is the entry point the pool starts with ``python -c``. It moves the
protocol off fds 0 and 1 (so a function's prints go to stderr), ignores SIGINT, applies
the ``RLIMIT_AS`` memory cap, builds a resolver for the configured registry or packages
folder, says ready, then answers one request at a time: arguments checked, the result
serialized here, a user's exception sent back as an error dict. A ``MemoryError`` is
reported and the worker exits so the pool replaces it.

What it does not do: enforce deadlines or restart itself (the pool kills and replaces
it), or import the pool or tornado. Start-up stays cheap: asyncio is loaded only when a
function returns an awaitable, and the resolver imports only what a call needs.
"""

from __future__ import annotations

import inspect
import os
import signal
from typing import TYPE_CHECKING, Any

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import ExecutionError, GlobalFuncError, WorkerCrashed
from globalfunc.executor.base import _FunctionCache, _run_coroutine, _user_error
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
    from gfgo.resolve import Resolver

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
    limit = config.get("memory_limit_mb")
    if limit:
        import resource

        cap = int(limit) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resolver = _worker_resolver(config)
    debug = bool(config.get("debug"))
    out = os.fdopen(proto_out, "wb", buffering=0)
    inp = os.fdopen(proto_in, "rb")  # buffered: a frame's header and body in one read
    try:
        return _serve_frames(inp, out, resolver, debug, limit)
    except BrokenPipeError:  # the pool went away: nothing left to answer
        return 0


def _serve_frames(inp: Any, out: Any, resolver: Resolver, debug: bool, limit: int | None) -> int:
    functions = _FunctionCache(resolver)
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


def _worker_resolver(config: dict[str, Any]) -> Resolver:
    from gfgo.resolve import Resolver
    from globalfunc.registry import Registry

    kwargs: dict[str, Any] = {}
    if config.get("cache_dir"):
        kwargs["cache_dir"] = config["cache_dir"]
    if config.get("registry_url"):
        reg_kwargs = {k: config[k] for k in ("tier1", "branch") if config.get(k)}
        registry = Registry.open(config["registry_url"], **reg_kwargs)
        return Resolver(registry, **kwargs)
    return Resolver(config["packages_dir"], **kwargs)


def _serve_one(
    body: bytes,
    functions: _FunctionCache,
    debug: bool,
    limit: int | None,
) -> tuple[bytes, bool]:
    name = "?"
    out_of_memory = False
    try:
        request = jsoncodec.loads(body)
        name = str(request["name"])
        func, spec = functions.prepare(name, request.get("version"), trust_cache=True)
        args, kwargs = request["args"], request["kwargs"]
        spec.check(args, kwargs)
        try:
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = _run_coroutine(result)
        except MemoryError:
            out_of_memory = True
        except (Exception, SystemExit) as exc:
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
