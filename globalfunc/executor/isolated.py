"""The isolated executor: registered functions run in supervised worker processes.

:class:`IsolatedExecutor` is a :class:`~globalfunc.executor.pool.SupervisedPool` of
:class:`~globalfunc.executor.handle.WorkerHandle` slots, each a child started by
:mod:`globalfunc.executor.child` (no ``GF_*`` settings, an unprivileged user when we are
root, the memory cap) running :func:`globalfunc.executor.worker.worker_main`. This module
turns calls into frames and the pool's outcomes into GlobalFunc errors:

- a call past its deadline (queued time included) is :class:`~globalfunc.errors.ExecutionTimeout`,
  and its worker is killed and replaced;
- a worker that dies or exceeds its memory cap during the call is
  :class:`~globalfunc.errors.WorkerCrashed`; a call it never read runs on another worker;
- more waiting calls than the queue holds is :class:`~globalfunc.errors.Overloaded`
  (HTTP 503 with ``Retry-After``);
- at most ``function_concurrency`` calls of one function run at once (by default all
  workers but one, when there are two or more), so one hanging function cannot hold them all.

Where code comes from: with a registry (``WorkerTarget(registry_url=...)`` or ``registry=``)
the parent reads each function's stored version and sends its source to a worker the first
time that worker runs that version; workers never open the registry and hold no storage
credentials. With ``WorkerTarget(packages_dir=...)`` workers import from that folder.

The pool lives on one event loop: the caller's (``loop=``, then ``await astart()``; the
HTTP server does this) or a private thread's (the default, for synchronous callers).
Synchronous :meth:`call` and coroutines on other loops reach it through
:func:`asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import (
    ConfigError,
    ExecutionTimeout,
    Interrupted,
    Overloaded,
    WorkerCrashed,
)
from globalfunc.executor.child import ChildSpec, adopt_orphans, kill_orphans, worker_uid
from globalfunc.executor.frame import answer_of, request_frame
from globalfunc.executor.handle import DEFAULT_MAX_FRAME, WorkerHandle
from globalfunc.executor.pool import (
    ChildDied,
    LoopThread,
    PoolClosed,
    PoolFull,
    QueueTimeout,
    RunTimeout,
    SupervisedPool,
)

if TYPE_CHECKING:
    from globalfunc.record import FunctionRecord
    from globalfunc.registry import Registry

__all__ = ["DEFAULT_MEMORY_LIMIT_MB", "DEFAULT_TIMEOUT", "IsolatedExecutor", "WorkerTarget"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY_LIMIT_MB = 2048
RETRY_AFTER = 1
DEFAULT_MAX_QUEUE = 1024
_CONFIG_VAR = "GF_WORKER_CONFIG"  # scrubbed GF_* names do not apply: added after the scrub


@dataclass(frozen=True, slots=True)
class WorkerTarget:
    """Where functions come from: a registry URL (preferred) or a packages folder.

    With ``registry_url`` only registered functions resolve; the parent opens the registry
    and workers receive the code. ``cache_dir`` is kept for compatibility and unused.
    """

    registry_url: str | None = None
    packages_dir: str | None = None
    tier1: str | None = None
    branch: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if (self.registry_url is None) == (self.packages_dir is None):
            raise ConfigError("WorkerTarget needs exactly one of registry_url or packages_dir")


class IsolatedExecutor:
    """A pool of supervised worker processes; see the module docstring."""

    mode = "isolated"

    def __init__(
        self,
        target: WorkerTarget | None = None,
        *,
        registry: Registry | None = None,
        workers: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
        timeouts: Mapping[str, float] | None = None,
        memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
        debug: bool = False,
        python: str = sys.executable,
        user: str | None = None,
        function_concurrency: int | None = None,
        max_queue: int | None = None,
        max_result_mb: int = DEFAULT_MAX_FRAME >> 20,
        loop: asyncio.AbstractEventLoop | None = None,
        start: bool = True,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}")
        for fname, value in (timeouts or {}).items():
            if value <= 0:
                raise ConfigError(f"timeout for {fname} must be positive, got {value}")
        if memory_limit_mb is not None and memory_limit_mb < 64:
            raise ConfigError(f"memory_limit_mb must be at least 64, got {memory_limit_mb}")
        if function_concurrency is not None and function_concurrency < 1:
            raise ConfigError(
                f"function_concurrency must be at least 1, got {function_concurrency}"
            )
        if max_queue is not None and max_queue < 0:
            raise ConfigError(f"max_queue must be 0 or more, got {max_queue}")
        if max_result_mb < 1:
            raise ConfigError(f"max_result_mb must be at least 1, got {max_result_mb}")
        self.max_result_mb = max_result_mb
        if target is None and registry is None:
            raise ConfigError("IsolatedExecutor needs a WorkerTarget or a registry")
        self.target = target
        self.size = workers
        self.timeout = timeout
        self.timeouts = dict(timeouts or {})
        self.memory_limit_mb = memory_limit_mb
        self.debug = debug
        self.function_concurrency = function_concurrency or max(1, workers - 1)
        self.max_queue = DEFAULT_MAX_QUEUE if max_queue is None else max_queue
        self._own_registry = False
        if registry is None and target is not None and target.registry_url is not None:
            from globalfunc.naming import DEFAULT_TIER1
            from globalfunc.registry import Registry

            registry = Registry.open(
                target.registry_url,
                tier1=target.tier1 or DEFAULT_TIER1,
                branch=target.branch or "master",
            )
            self._own_registry = True
        self.registry = registry
        packages_dir = target.packages_dir if target is not None else None
        config = {"packages_dir": packages_dir, "memory_limit_mb": memory_limit_mb, "debug": debug}
        self._spec = ChildSpec(
            argv=[
                python,
                "-c",
                "import os, sys; from globalfunc.executor.worker import worker_main; "
                f"sys.exit(worker_main(os.environ.pop({_CONFIG_VAR!r})))",
            ],
            env={_CONFIG_VAR: orjson.dumps(config).decode()},
            memory_mb=memory_limit_mb,
            user=user,
        )
        self._thread: LoopThread | None = None
        if loop is None:
            self._thread = LoopThread()
            loop = self._thread.loop
        self.loop = loop
        uid = worker_uid(user)
        if uid is not None:
            adopt_orphans()  # what a function leaves running becomes ours to kill
        self.pool: SupervisedPool[WorkerHandle] = SupervisedPool(
            self._spawn,
            workers,
            loop=loop,
            per_key_limit=self.function_concurrency,
            max_queue=self.max_queue,
            name="isolated pool",
            sweep=None if uid is None else functools.partial(kill_orphans, uid),
        )
        self._started = False
        self._closed = False
        if start and self._thread is not None:
            self.start()

    def _spawn(self) -> WorkerHandle:
        return WorkerHandle.spawn(self._spec, self.max_result_mb << 20)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, wait: float = 60.0) -> None:
        """Start the workers and wait until each has said ready (from outside the pool's loop)."""
        try:
            self._sync(self.astart(), wait + 5)
        except BaseException:
            self.close()
            raise

    async def astart(self) -> None:
        """Start the workers (on the pool's loop)."""
        if self._started:
            return
        try:
            await self.pool.start()
        except ChildDied as exc:
            self.pool.close()
            user = self._spec.user if worker_uid(self._spec.user) is not None else None
            raise ConfigError(
                f"worker process failed to start ({exc.how}); run {self._spec.argv[0]} -c "
                "'import globalfunc'"
                + (f" as user {user!r} (`make setup` lets it reach this Python)" if user else "")
                + " to check the environment; see its stderr above"
            ) from None
        except (TimeoutError, OSError) as exc:
            self.pool.close()
            raise ConfigError(f"worker processes did not start: {exc or 'timed out'}") from None
        self._started = True

    def close(self) -> None:
        """Stop every worker (EOF first, then kill what is left); fail calls in flight."""
        if self._closed:
            return
        self._closed = True
        if self._on_loop() or self.loop.is_closed() or not self.loop.is_running():
            if not self.loop.is_closed():
                self.pool.close()
        else:
            with contextlib.suppress(Exception):  # the loop died: nothing left to stop
                asyncio.run_coroutine_threadsafe(self._aclose(), self.loop).result(15)
        if self._thread is not None:
            self._thread.stop()
        if self._own_registry and self.registry is not None:
            self.registry.close()

    async def _aclose(self) -> None:
        self.pool.close()
        await asyncio.sleep(0)  # the failed calls' callbacks run before we return

    def __enter__(self) -> IsolatedExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def replaced(self) -> int:
        return self.pool.replaced

    def stats(self) -> dict[str, int]:
        return self.pool.stats()

    def pids(self) -> list[int]:
        """Process ids of the current workers (for tests and diagnostics)."""
        if self._on_loop() or not self.loop.is_running():
            return self.pool.pids()
        return self._sync(self._apids(), 10)

    async def _apids(self) -> list[int]:
        return self.pool.pids()

    def timeout_for(self, name: str, timeout: float | None = None) -> float:
        """The deadline of one call: the explicit one, else the function's, else the default."""
        if timeout is not None:
            return timeout
        return self.timeouts.get(name, self.timeout)

    # -- calls -----------------------------------------------------------------------------
    def submit_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
        record: FunctionRecord | None = None,
        encoded: bool = False,
    ) -> asyncio.Future[bytes]:
        """Start a call from a running loop; the future gets the result's JSON bytes.

        ``encoded``: ``args``/``kwargs`` are already JSON values with type tags (as parsed
        from a request body); they are decoded once, in the worker.
        """
        limit = self.timeout_for(name, timeout)
        if record is None and self.registry is not None:
            record = self._record(name, version)
        if record is not None:
            version = record.sha256
        payload = request_frame(name, args, kwargs or {}, tagged, version, encoded)
        if self._on_loop():
            return self._start(name, payload, record, limit)
        work = self._awaited(name, payload, record, limit)
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    async def call_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
        record: FunctionRecord | None = None,
        encoded: bool = False,
    ) -> bytes:
        return await self.submit_json(
            name,
            args,
            kwargs,
            tagged=tagged,
            timeout=timeout,
            version=version,
            record=record,
            encoded=encoded,
        )

    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Call from synchronous code (not from the thread running the pool's loop)."""
        return jsoncodec.loads(self.call_sync_json(name, args, kwargs, timeout=timeout))

    def call_sync_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        record: FunctionRecord | None = None,
        encoded: bool = False,
    ) -> bytes:
        """Run from synchronous code (not the pool's loop); the result's JSON bytes, tagged."""
        if self._on_loop():
            raise ConfigError(
                "call() would block the event loop that serves this pool; await call_json()"
            )
        limit = self.timeout_for(name, timeout)
        if record is None and self.registry is not None:
            record = self._record(name, None)
        version = None if record is None else record.sha256
        payload = request_frame(name, args, kwargs or {}, True, version, encoded)
        out: bytes = self._sync(self._awaited(name, payload, record, limit), None)
        return out

    async def _awaited(
        self, name: str, payload: bytes, record: FunctionRecord | None, limit: float
    ) -> bytes:
        """:meth:`_start` for a caller on another thread or loop."""
        out: bytes = await self._start(name, payload, record, limit)
        return out

    def _start(
        self, name: str, payload: bytes, record: FunctionRecord | None, limit: float
    ) -> asyncio.Future[bytes]:
        """Start one call on the pool's loop: no task, one future the pool completes from
        the worker's answer (callbacks all the way)."""
        if self._closed:
            failed: asyncio.Future[bytes] = self.loop.create_future()
            failed.set_exception(
                Overloaded(
                    "the worker pool is closed (the server is stopping)", retry_after=RETRY_AFTER
                )
            )
            return failed

        def job_for(slot: WorkerHandle) -> bytes:
            if record is None or slot.loaded.get(name) == record.sha256:
                return payload
            slot.loaded[name] = record.sha256
            code = orjson.dumps({"sha256": record.sha256, "text": record.code})
            return payload[:-1] + b',"code":' + code + b"}"

        def finish(frame: Any, exc: BaseException | None) -> bytes:
            if exc is not None:
                raise self._error(name, limit, exc)
            return answer_of(name, frame)

        return self.pool.submit(name, job_for, self.loop.time() + limit, finish)

    def _error(self, name: str, limit: float, exc: BaseException) -> BaseException:
        """What a caller sees of the pool's outcome."""
        if isinstance(exc, RunTimeout):
            return self._timeout(name, limit, "running")
        if isinstance(exc, QueueTimeout):
            return self._timeout(name, limit, "waiting for a free worker")
        if isinstance(exc, ChildDied):
            return WorkerCrashed(
                f"the worker running {name} {exc.how}; it was replaced. The function "
                "crashed the process (os._exit, a segfault, a signal, or the memory cap)",
                function=name,
                exit=exc.how,
            )
        if isinstance(exc, PoolFull):
            return Overloaded(
                f"{self.max_queue} calls of {name} are already waiting for a worker; retry in "
                f"{RETRY_AFTER} s or raise GF_QUEUE_SIZE / GF_WORKERS",
                retry_after=RETRY_AFTER,
                function=name,
            )
        if isinstance(exc, PoolClosed) and exc.started:
            return Interrupted(
                f"the server stopped while {name} ran; it may have run in part. It is not "
                "sent again unless the call allows retries (retries=N); check its effects "
                "before calling it again",
                function=name,
            )
        if isinstance(exc, PoolClosed):  # never left the queue: nothing ran
            return Overloaded(
                f"the server is stopping; {name} did not run to the end. Retry in "
                f"{RETRY_AFTER} s (on another server)",
                retry_after=RETRY_AFTER,
                function=name,
            )
        return exc

    # -- helpers ---------------------------------------------------------------------------
    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _sync(self, coro: Any, timeout: float | None) -> Any:
        if self.loop.is_closed():
            coro.close()
            raise Overloaded("the worker pool is closed", retry_after=RETRY_AFTER)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _record(self, name: str, version: str | None) -> FunctionRecord:
        assert self.registry is not None
        return self.registry.get(name, sha256=version)

    def _timeout(self, name: str, limit: float, doing: str) -> ExecutionTimeout:
        return ExecutionTimeout(
            f"{name} did not finish within {limit:g} s ({doing}); make it faster or raise "
            "its timeout (GF_CALL_TIMEOUT, or a per-function override)",
            function=name,
            timeout=limit,
        )
