"""Run registered functions by name: inline in this process, or isolated in worker processes.

Two executors with one surface (:class:`Executor`)::

    InlineExecutor(resolver)                 # in-process: trusted code, fastest, no limits
    IsolatedExecutor(WorkerTarget(...), workers=4, timeout=30, memory_limit_mb=2048)

Both check arguments against the function's real signature (``BadArguments``, the message
shows the signature) and turn whatever the function raises into
:class:`~globalfunc.errors.ExecutionError` carrying the exception's type and message (and
its traceback only when ``debug``). ``call_json`` returns the result already serialized
with :mod:`globalfunc.jsoncodec`, so a server can write it without touching it again; in
isolated mode the worker serializes it and the bytes pass through untouched.

The isolated executor keeps persistent worker processes (``python -c`` running
:func:`worker_main`), sends each the stored code of a function version once, speaks
length-prefixed orjson frames over their stdin/stdout pipes, and gives every call a
deadline (per-function overrides in ``timeouts``), queued time included. On a deadline the
worker is killed and replaced (:class:`~globalfunc.errors.ExecutionTimeout`); a worker that
dies (``os._exit``, a segfault, a signal), exceeds its memory cap or breaks the protocol is
replaced and the call fails with :class:`~globalfunc.errors.WorkerCrashed`; a call it never
read runs on another worker.

What it does not do: the inline executor cannot stop a function that hangs (a timeout
there needs isolation), and there is no cross-machine scheduling (Ray and the worker
registry are separate layers).

The package, one idea per module:

- :mod:`~globalfunc.executor.base`: the :class:`Executor` surface, :class:`ArgSpec`, the
  translation of user errors, and the function cache the inline executor and a worker share;
- :mod:`~globalfunc.executor.inline`: :class:`InlineExecutor`;
- :mod:`~globalfunc.executor.child`: the one supervised child process (environment scrub,
  memory cap, worker user, process group, exit watch, orphans);
- :mod:`~globalfunc.executor.slot`: what a pool slot is, and the pool's signals;
- :mod:`~globalfunc.executor.pool`: :class:`~globalfunc.executor.pool.SupervisedPool`,
  shared by the isolated executor and the AIGES process engine;
- :mod:`~globalfunc.executor.call`: one call through the pool, driven by callbacks;
- :mod:`~globalfunc.executor.handle`: the parent's end of one worker's pipes (a slot);
- :mod:`~globalfunc.executor.frame`: the frames both sides of a pipe speak;
- :mod:`~globalfunc.executor.isolated`: :class:`IsolatedExecutor` and :class:`WorkerTarget`;
- :mod:`~globalfunc.executor.worker`: what runs inside a worker process (:func:`worker_main`).

This module only re-exports their public names, loading each module on first use: a worker
process imports :mod:`globalfunc.executor.worker`, and so this package, and must not pay
for the pool (asyncio, subprocess, threads) it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from globalfunc.executor.base import ArgSpec, Executor
    from globalfunc.executor.inline import InlineExecutor
    from globalfunc.executor.isolated import (
        DEFAULT_MEMORY_LIMIT_MB,
        DEFAULT_TIMEOUT,
        IsolatedExecutor,
        WorkerTarget,
    )
    from globalfunc.executor.worker import worker_main

__all__ = [
    "DEFAULT_MEMORY_LIMIT_MB",
    "DEFAULT_TIMEOUT",
    "ArgSpec",
    "Executor",
    "InlineExecutor",
    "IsolatedExecutor",
    "WorkerTarget",
    "worker_main",
]

_HOME = {
    "ArgSpec": "base",
    "Executor": "base",
    "InlineExecutor": "inline",
    "DEFAULT_MEMORY_LIMIT_MB": "isolated",
    "DEFAULT_TIMEOUT": "isolated",
    "IsolatedExecutor": "isolated",
    "WorkerTarget": "isolated",
    "worker_main": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
