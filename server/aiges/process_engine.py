"""A wrapper.py engine in plugin processes of its own, so ``gf serve`` survives what it does.

``gf serve --aiges-wrapper DIR`` serves AIGES wrappers over the ase HTTP protocol. In the
default isolated mode each wrapper runs in a pool of child processes: GlobalFunc's own
AIGES plugin (``python -m server.aiges``, on the C++ server when it is built), started
as a supervised child (:mod:`globalfunc.executor.child`: no ``GF_*`` settings, the memory
cap, an unprivileged user when we are root) and driven the way the loader drives it
(:class:`~server.aiges.client.LoaderClient`). The children are slots of the same
:class:`~globalfunc.executor.pool.SupervisedPool` that runs isolated registry functions,
so the rules are the same:

- each child runs one call at a time; a call past ``call_timeout`` answers
  ``ExecutionTimeout`` (10102) and only its child is killed and replaced (a new child runs
  ``wrapperInit`` again), so one hung call does not take the others with it;
- a child that dies (a crash, ``os._exit``, the memory cap) answers ``WorkerCrashed``
  (10910) for the call it held; a call waits at most ``call_timeout`` for a free child.

Sessions are not served over HTTP, so ``create``/``write``/``destroy`` answer an error.
What it does not do: retry a call, or share a child between wrappers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from globalfunc.errors import ConfigError, ExecutionTimeout, WorkerCrashed
from globalfunc.executor.child import Child, ChildSpec
from globalfunc.executor.pool import (
    ChildDied,
    LoopThread,
    PoolClosed,
    PoolFull,
    QueueTimeout,
    RunTimeout,
    SupervisedPool,
)
from server.aiges.client import LoaderClient, PluginStartError, loader_env
from server.aiges.engine import EXEC_FAILED, INIT_FAILED, Emit, Frame, Outcome, split_error_detail
from server.aiges.proto import aiges_pb2

__all__ = ["ProcessEngine", "native_built"]

log = logging.getLogger(__name__)

_AIGES_DIR = Path(__file__).resolve().parent
START_TIMEOUT = 60.0
SESSIONS_UNSUPPORTED = "sessions are not served over the ase HTTP protocol"

Job = Callable[[LoaderClient], Any]


def native_built() -> bool:
    """Whether the C++ plugin server (built by ``pip install`` through setup.py) is there."""
    return any(_AIGES_DIR.glob("_native*.so"))


class _PluginSlot:
    """One plugin process, initialised, with a ``communicate`` stream open (a pool slot)."""

    def __init__(self, child: Child, client: LoaderClient, config: dict[str, str]) -> None:
        self.child = child
        self.client = client
        self.config = config
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dead = False
        self._done: Callable[[Any, BaseException | None], None] | None = None
        self._threads = ThreadPoolExecutor(1, thread_name_prefix="aiges-slot")

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def detach(self) -> None:
        """No pipe of ours to watch: the channel is gRPC's."""

    async def ready(self) -> None:
        assert self.loop is not None
        await self.loop.run_in_executor(self._threads, self._init)

    def _init(self) -> None:
        ret = self.client.init(self.config, timeout=START_TIMEOUT)
        if ret != 0:
            raise ChildDied(
                False,
                f"wrapperInit returned {ret}; plugin log:\n{_tail(self.client.stderr_text())}",
            )
        self.client.open_communicate()

    @property
    def reusable(self) -> bool:
        return not self.dead and self.client.stream_closed is None

    def start_call(self, job: Job, done: Callable[[Any, BaseException | None], None]) -> None:
        loop = self.loop
        assert loop is not None
        if self.dead:
            done(None, ChildDied(False, self.child.exit_description(0.5)))
            return
        self._done = done

        def settled(inner: Any) -> None:
            if self._done is not done:
                return  # timed out or the child died first: this answer is nobody's
            self._done = None
            exc = inner.exception()
            if exc is None:
                done(inner.result(), None)
            elif self.dead or self.child.exit_code() is not None or isinstance(exc, ChildDied):
                done(None, ChildDied(True, self.child.exit_description(0.5)))
            else:  # the stream or the rpc failed: the child is of no further use
                self.dead = True
                done(None, ChildDied(True, f"its connection failed ({exc})"))

        loop.run_in_executor(self._threads, job, self.client).add_done_callback(settled)

    def on_exit(self) -> None:
        self.dead = True
        done, self._done = self._done, None
        if done is not None:
            done(None, ChildDied(True, self.child.exit_description(0.5)))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the channel or process may be gone already
            self.client.close()
        self.child.close()
        self._threads.shutdown(wait=False, cancel_futures=True)


class ProcessEngine:
    """Engine for a wrapper served by a pool of plugin processes; see the module docstring."""

    def __init__(
        self,
        wrapper: str | os.PathLike[str],
        *,
        call_timeout: float = 30.0,
        memory_mb: int | None = None,
        processes: int = 2,
        user: str | None = None,
        native: bool | None = None,
    ) -> None:
        self.wrapper = Path(wrapper)
        self.call_timeout = call_timeout
        self.memory_mb = memory_mb
        self.processes = max(1, processes)
        self.user = user
        self.native = native_built() if native is None else native
        self.load_error = ""
        self._config: dict[str, str] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # guards _schemas only
        self._thread: LoopThread | None = None
        self._pool: SupervisedPool[_PluginSlot] | None = None

    @property
    def restarts(self) -> int:
        return 0 if self._pool is None else self._pool.replaced

    # -- the children -------------------------------------------------------------------
    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "server.aiges", "--wrapper", str(self.wrapper)]
        argv += ["--workers", "1", "--log-level", "WARNING", "--error-details"]
        return [*argv, "--server", "native" if self.native else "python"]

    def _env(self) -> dict[str, str]:
        """What the plugin gets on top of the scrubbed environment: the loader's variables."""
        return loader_env({})

    def _spawn(self) -> _PluginSlot:
        fd, log_name = tempfile.mkstemp(prefix="aiges-plugin-", suffix=".log")
        try:
            spec = ChildSpec(
                argv=self._argv(),
                env=self._env(),
                memory_mb=self.memory_mb,
                user=self.user,
                cwd=str(self.wrapper.parent if self.wrapper.is_file() else self.wrapper),
                stdin_pipe=False,
                stderr=fd,
            )
            child = Child.spawn(spec)
        finally:
            os.close(fd)
        if child.identity is not None:
            with contextlib.suppress(OSError):  # the plugin writes its own log file
                os.chown(log_name, child.identity.uid, child.identity.gid)
        try:
            client = LoaderClient.attach(child.proc, Path(log_name), timeout=START_TIMEOUT)
        except (PluginStartError, OSError, TimeoutError) as exc:
            child.close()
            raise ChildDied(False, f"the wrapper process did not start: {exc}") from exc
        return _PluginSlot(child, client, self._config)

    def _run(self, key: str, job: Job, timeout: float) -> Any:
        assert self._pool is not None and self._thread is not None
        pool, loop = self._pool, self._thread.loop

        async def run() -> Any:
            return await pool.run(key, lambda _slot: job, loop.time() + timeout)

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    # -- Engine -------------------------------------------------------------------------
    def bind(self, emit: Emit) -> None:
        """Session results never come back over HTTP; nothing to route."""

    def init(self, config: dict[str, str]) -> int:
        self._config = dict(config)
        self._thread = LoopThread()
        loop = self._thread.loop
        self._pool = SupervisedPool(
            self._spawn,
            self.processes,
            loop=loop,
            start_timeout=START_TIMEOUT,
            name=f"wrapper {self.wrapper.name}",
        )
        try:
            asyncio.run_coroutine_threadsafe(self._pool.start(), loop).result()
        except (ChildDied, ConfigError, OSError, TimeoutError) as exc:
            self.load_error = getattr(exc, "how", "") or str(exc) or type(exc).__name__
            if self.user and os.geteuid() == 0:
                self.load_error += (
                    f" (as root, wrapper processes run as {self.user!r}: make {self.wrapper} "
                    "readable to that user, or set GF_WORKER_USER to another)"
                )
            self.fini()
            return INIT_FAILED
        return 0

    def schema(self, service_id: str) -> dict[str, Any]:
        with self._lock:
            known = self._schemas.get(service_id)
        if known is None:
            known = self._run("schema", lambda c: c.schema(service_id), START_TIMEOUT)
            with self._lock:
                self._schemas[service_id] = known
        return known

    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        items = [
            aiges_pb2.RequestData(
                key=f.key, data=f.data, len=len(f.data), type=f.type, status=f.status, desc=f.desc
            )
            for f in frames
        ]
        limit = self.call_timeout
        try:
            # The pool's deadline is the one that counts; the client's own is only a backstop.
            reply = self._run("once", lambda c: c.once(params, items, timeout=limit + 5), limit)
        except (RunTimeout, QueueTimeout) as exc:
            doing = "answer" if isinstance(exc, RunTimeout) else "get a free process"
            return Outcome.failure(
                ExecutionTimeout.aiges_code,
                f"the wrapper did not {doing} within {limit:g}s"
                + ("; its process was replaced" if isinstance(exc, RunTimeout) else ""),
            )
        except ChildDied as died:
            return Outcome.failure(
                WorkerCrashed.aiges_code,
                f"the wrapper process died during the call ({died.how}); it was replaced",
            )
        except (PoolClosed, PoolFull, RuntimeError) as exc:
            return Outcome.failure(WorkerCrashed.aiges_code, f"the wrapper is not serving: {exc}")
        outcome = Outcome(
            ret=reply.ret,
            frames=[Frame(d.key, d.data, d.type, d.status, dict(d.desc)) for d in reply.list],
            message=f"wrapper error {reply.ret}" if reply.ret else "",
        )
        return split_error_detail(outcome) if reply.ret else outcome

    def create(self, params: dict[str, str], sid: str, tag: str) -> tuple[str, int]:
        log.warning("wrapper %s: %s", self.wrapper, SESSIONS_UNSUPPORTED)
        return "", EXEC_FAILED

    def write(self, handle: str, frames: list[Frame], sid: str) -> int:
        return EXEC_FAILED

    def destroy(self, handle: str) -> int:
        return EXEC_FAILED

    def fini(self) -> int:
        thread, pool = self._thread, self._pool
        self._thread = self._pool = None
        if thread is not None and pool is not None:
            with contextlib.suppress(Exception):  # the loop is gone: the children went with it

                async def close() -> None:
                    pool.close()

                asyncio.run_coroutine_threadsafe(close(), thread.loop).result(15)
            thread.stop()
        return 0


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
