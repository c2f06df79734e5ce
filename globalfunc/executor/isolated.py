"""The isolated executor: a pool of persistent worker processes, each call with a deadline.

:class:`IsolatedExecutor` starts ``workers`` processes (``python -c`` running
:func:`globalfunc.executor.worker.worker_main` with a :class:`WorkerTarget` and the memory
cap as its config) and hands each call to a free one as a length-prefixed frame
(:mod:`globalfunc.executor.frame`) over its stdin; the worker's answer comes back on its
stdout as the result's JSON bytes, passed through untouched. Inside here:

- :class:`_Worker`, the parent's handle on one process: its pipes, non-blocking reads,
  the ready handshake, how it exited, killing it;
- the call lifecycle: :class:`_Call` on an event loop (callbacks, no task: wait for a
  worker, send, take the answer from the worker's reader, or give up at the deadline),
  :class:`_Waiter` for a synchronous caller, and ``call()`` for synchronous code;
- deadlines (per-function overrides in ``timeouts``) and replacement: a worker past its
  deadline is killed (:class:`~globalfunc.errors.ExecutionTimeout`), one that dies or
  exceeds its memory cap fails the call (:class:`~globalfunc.errors.WorkerCrashed`), and
  either is replaced by a fresh process.

What it does not do: run user code in this process (that is the worker's side,
:mod:`globalfunc.executor.worker`), restart a worker that merely runs slowly before its
deadline, or schedule across machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import (
    ConfigError,
    ExecutionTimeout,
    GlobalFuncError,
    InvalidRequest,
    WorkerCrashed,
    error_from_dict,
)
from globalfunc.executor.frame import _ERR_EXITING, _HEADER, _OK, _READY

__all__ = ["DEFAULT_MEMORY_LIMIT_MB", "DEFAULT_TIMEOUT", "IsolatedExecutor", "WorkerTarget"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY_LIMIT_MB = 2048
_READ_CHUNK = 1 << 16
_CONFIG_VAR = "GF_WORKER_CONFIG"


@dataclass(frozen=True, slots=True)
class WorkerTarget:
    """Where workers find functions: a registry URL (preferred) or a packages folder.

    With ``registry_url`` only registered functions resolve; the stored code is
    materialized into ``cache_dir`` (content-addressed) and imported from there.
    """

    registry_url: str | None = None
    packages_dir: str | None = None
    tier1: str | None = None
    branch: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if (self.registry_url is None) == (self.packages_dir is None):
            raise ConfigError("WorkerTarget needs exactly one of registry_url or packages_dir")


class _Worker:
    """One worker process and the parent's end of its pipes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,  # a terminal's Ctrl-C goes to the server, not its workers
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        os.set_blocking(self.rfd, False)
        self.buf = bytearray()
        self.ready = False
        self.calls = 0
        # With an event loop: one reader registered for the worker's life, and the
        # future of the call in flight (``waiter``), instead of add/remove per call.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiter: _Call | None = None
        self.on_dead: Callable[[_Worker], None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.rfd, self._on_readable)
        self.loop = loop

    def detach(self) -> None:
        loop, self.loop = self.loop, None
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):  # fd already closed, loop shutting down
                loop.remove_reader(self.rfd)

    def _on_readable(self) -> None:
        try:
            frame = self.read_available()
        except (EOFError, OSError):
            self.detach()
            waiter, self.waiter = self.waiter, None
            if waiter is not None:
                waiter.died(self)
            elif self.on_dead is not None:
                self.on_dead(self)  # died while idle: replace it before anyone calls it
            return
        if frame is not None:
            waiter, self.waiter = self.waiter, None
            if waiter is not None:
                waiter.answered(self, frame)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, payload: bytes) -> None:
        view = memoryview(_HEADER.pack(len(payload)) + payload)
        while view:
            written = os.write(self.wfd, view)
            view = view[written:]

    def read_available(self) -> bytes | None:
        """Read what the pipe holds; a complete response frame, or None. EOF raises EOFError."""
        while True:
            frame = self._take_frame()
            if frame is not None:
                if frame == _READY and not self.ready:
                    self.ready = True
                    continue
                return frame
            try:
                chunk = os.read(self.rfd, _READ_CHUNK)
            except BlockingIOError:
                return None
            if not chunk:
                raise EOFError
            self.buf += chunk

    def _take_frame(self) -> bytes | None:
        if len(self.buf) < 4:
            return None
        (size,) = _HEADER.unpack_from(self.buf)
        if len(self.buf) < 4 + size:
            return None
        frame = bytes(self.buf[4 : 4 + size])
        del self.buf[: 4 + size]
        return frame

    def wait_ready(self, deadline: float) -> None:
        """Block until the worker says it is ready (TimeoutError past ``deadline``)."""
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            frame = self.read_available()
            if frame is not None:
                raise EOFError(f"worker {self.pid} sent {frame[:40]!r} before it was asked")
            if self.ready:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            poller.poll(max(1, int(left * 1000)))

    def wait_frame(self, deadline: float) -> bytes:
        """Block until a frame arrives or ``deadline`` (monotonic) passes (TimeoutError)."""
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            frame = self.read_available()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            poller.poll(max(1, int(left * 1000)))

    def exit_description(self) -> str:
        """How the process ended (waits briefly; kills it if it is somehow still alive)."""
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is None:
            return "ended"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def kill(self) -> None:
        self.detach()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)
        self.close_pipes()

    def close_pipes(self) -> None:
        self.detach()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class _Waiter:
    """A synchronous caller waiting for a free worker (a concurrent future)."""

    __slots__ = ("fut",)

    def __init__(self, fut: Future[_Worker]) -> None:
        self.fut = fut

    def offer(self, worker: _Worker) -> bool:
        """Hand ``worker`` over; False if the waiter already gave up."""
        fut = self.fut
        if fut.done():
            return False
        if not fut.set_running_or_notify_cancel():
            return False
        fut.set_result(worker)
        return True


class _Call:
    """One call on an event loop, driven by callbacks (no task): wait for a worker, send,
    take the answer from the worker's reader, or give up at the deadline."""

    __slots__ = ("done", "loop", "name", "payload", "pool", "result", "timer", "worker")

    def __init__(
        self,
        pool: IsolatedExecutor,
        loop: asyncio.AbstractEventLoop,
        name: str,
        payload: bytes,
        deadline: float,
    ) -> None:
        self.pool = pool
        self.loop = loop
        self.name = name
        self.payload = payload
        self.result: asyncio.Future[bytes] = loop.create_future()
        self.worker: _Worker | None = None
        self.done = False
        self.timer = loop.call_at(_to_loop_time(loop, deadline), self._expired)

    def offer(self, worker: _Worker) -> bool:
        """A free worker for this call (on the loop's thread); False if it gave up."""
        if self.done:
            return False
        self.run(worker)
        return True

    def run(self, worker: _Worker) -> None:
        self.worker = worker
        worker.waiter = self
        try:
            worker.send(self.payload)
        except OSError:
            worker.waiter = None
            self.worker = None
            self._finish(None, self.pool._crashed(worker, self.name))

    def answered(self, worker: _Worker, frame: bytes) -> None:
        self.worker = None
        worker.calls += 1
        try:
            out = self.pool._outcome(worker, frame, self.name)
        except GlobalFuncError as exc:
            self._finish(None, exc)
        else:
            self._finish(out, None)

    def died(self, worker: _Worker) -> None:
        self.worker = None
        self._finish(None, self.pool._crashed(worker, self.name))

    def abandon(self) -> None:
        """The pool is closing: fail the call (from any thread)."""
        if not self.loop.is_closed():
            err = WorkerCrashed("the worker pool closed before the call finished")
            self.loop.call_soon_threadsafe(self._finish, None, err)

    def _expired(self) -> None:
        if self.done:
            return
        worker, self.worker = self.worker, None
        if worker is None:
            self._finish(None, self.pool._timeout(self.name, "waiting for a free worker"))
            return
        worker.waiter = None
        self.pool._replace(worker, kill=True)
        self._finish(None, self.pool._timeout(self.name, "running"))

    def _finish(self, out: bytes | None, exc: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        self.timer.cancel()
        if self.result.done():  # the caller stopped waiting
            return
        if exc is not None:
            self.result.set_exception(exc)
        else:
            assert out is not None
            self.result.set_result(out)


class IsolatedExecutor:
    """A pool of persistent worker processes with per-call deadlines and a memory cap."""

    mode = "isolated"

    def __init__(
        self,
        target: WorkerTarget,
        *,
        workers: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
        timeouts: Mapping[str, float] | None = None,
        memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
        debug: bool = False,
        python: str = sys.executable,
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
        self.target = target
        self.size = workers
        self.timeout = timeout
        self.timeouts = dict(timeouts or {})
        self.memory_limit_mb = memory_limit_mb
        self.debug = debug
        config = {**asdict(target), "memory_limit_mb": memory_limit_mb, "debug": debug}
        # The config travels in the environment, not argv: it may hold a storage URL with
        # a password, and argv is world-readable (ps, /proc/<pid>/cmdline).
        self._argv = [
            python,
            "-c",
            "import os, sys; from globalfunc.executor.worker import worker_main; "
            f"sys.exit(worker_main(os.environ.pop({_CONFIG_VAR!r})))",
        ]
        self._env = _worker_env(orjson.dumps(config).decode())
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._waiters: deque[_Waiter | _Call] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.replaced = 0
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, wait: float = 60.0) -> None:
        """Start the workers and wait until each has imported its code and said ready."""
        with self._lock:
            missing = self.size - len(self._all)
            fresh = [self._spawn() for _ in range(missing)]
        deadline = time.monotonic() + wait
        for worker in fresh:
            try:
                worker.wait_ready(deadline)
            except (EOFError, TimeoutError):
                why = "did not start in time" if worker.proc.poll() is None else "failed"
                desc = worker.exit_description()
                self.close()
                raise ConfigError(
                    f"worker process {why} ({desc}); run {self._argv[0]} -c 'import globalfunc' "
                    "to check the environment, and see its stderr above"
                ) from None
        with self._lock:
            for worker in fresh:
                self._release_locked(worker)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._argv, self._env)
        worker.on_dead = self._on_dead
        self._all.add(worker)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            worker.attach(loop)
        return worker

    def _on_dead(self, worker: _Worker) -> None:
        log.warning("idle worker %d %s", worker.pid, worker.exit_description())
        self._replace(worker, kill=True)

    def _bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve async calls on ``loop``: every worker's pipe gets a reader there."""
        old = self._loop
        if old is loop:
            return
        if old is not None and not old.is_closed() and old.is_running():
            raise ConfigError(
                "this worker pool already serves another running event loop; use one pool per loop"
            )
        with self._lock:
            self._loop = loop
            for worker in self._all:
                worker.detach()
                worker.attach(loop)

    def _unbind_loop(self) -> None:
        with self._lock:
            self._loop = None
            for worker in self._all:
                worker.detach()

    def close(self) -> None:
        """Stop every worker (EOF first, then kill what is left)."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            waiters = list(self._waiters)
            self._waiters.clear()
        for waiter in waiters:
            if isinstance(waiter, _Call):
                waiter.abandon()
            elif not waiter.fut.done():
                waiter.fut.cancel()
        for worker in workers:
            if worker.waiter is not None:
                worker.waiter.abandon()
                worker.waiter = None
            worker.close_pipes()
        deadline = time.monotonic() + 2.0
        for worker in workers:
            try:
                worker.proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()

    def __enter__(self) -> IsolatedExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "workers": len(self._all),
                "busy": len(self._all) - len(self._idle),
                "replaced": self.replaced,
            }

    def pids(self) -> list[int]:
        """Process ids of the current workers (for tests and diagnostics)."""
        with self._lock:
            return sorted(w.pid for w in self._all)

    def timeout_for(self, name: str, timeout: float | None = None) -> float:
        """The deadline of one call: the explicit one, else the function's, else the default."""
        if timeout is not None:
            return timeout
        return self.timeouts.get(name, self.timeout)

    # -- the pool ---------------------------------------------------------------------------
    def _release_locked(self, worker: _Worker) -> None:
        if self._closed:
            worker.close_pipes()
            return
        while self._waiters:
            if self._waiters.popleft().offer(worker):
                return
        self._idle.append(worker)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._release_locked(worker)

    def _replace(self, worker: _Worker, *, kill: bool) -> None:
        if kill:
            worker.kill()
        else:
            worker.close_pipes()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=1.0)
        with self._lock:
            self._all.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            if self._closed:
                return
            self.replaced += 1
            fresh = self._spawn()
            self._release_locked(fresh)
        log.warning("worker %d replaced by %d", worker.pid, fresh.pid)

    def _check_open(self) -> None:
        if self._closed:
            raise WorkerCrashed("the worker pool is closed")

    def _acquire_sync(self, deadline: float, name: str) -> _Worker:
        with self._lock:
            self._check_open()
            if self._idle:
                return self._idle.pop()
            fut: Future[_Worker] = Future()
            self._waiters.append(_Waiter(fut))
        try:
            return fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            with self._lock:
                got = fut.done() and not fut.cancelled()
                if not got:
                    fut.cancel()
            if got:
                return fut.result()
            raise self._timeout(name, "waiting for a free worker") from None

    def _timeout(self, name: str, doing: str) -> ExecutionTimeout:
        limit = self.timeout_for(name)
        return ExecutionTimeout(
            f"{name} did not finish within {limit:g} s ({doing}); make it faster or raise "
            "its timeout (GF_CALL_TIMEOUT, or a per-function override)",
            function=name,
            timeout=limit,
        )

    def _request(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        tagged: bool,
        version: str | None = None,
    ) -> bytes:
        try:
            return orjson.dumps(
                {
                    "name": name,
                    "version": version,
                    "args": jsoncodec.encode(list(args)),
                    "kwargs": jsoncodec.encode(dict(kwargs)),
                    "tagged": tagged,
                },
                option=orjson.OPT_NON_STR_KEYS,
            )
        except GlobalFuncError as exc:
            raise InvalidRequest(f"arguments of {name} cannot be sent to a worker: {exc}") from exc

    def _outcome(self, worker: _Worker, frame: bytes, name: str) -> bytes:
        status, body = frame[:1], frame[1:]
        if status == _OK:
            self._release(worker)
            return body
        if status == _ERR_EXITING:
            self._replace(worker, kill=False)
        else:
            self._release(worker)
        try:
            data = orjson.loads(body)
            err = error_from_dict(data.get("error", {}), 500)
        except (orjson.JSONDecodeError, AttributeError):
            err = WorkerCrashed(f"worker sent an unreadable answer for {name}")
        raise err

    def _crashed(self, worker: _Worker, name: str) -> WorkerCrashed:
        how = worker.exit_description()
        self._replace(worker, kill=True)
        return WorkerCrashed(
            f"the worker running {name} {how}; it was replaced. The function crashed the "
            "process (os._exit, a segfault, or the memory cap)",
            function=name,
            exit=how,
        )

    def submit_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
    ) -> asyncio.Future[bytes]:
        """Start a call on the running loop; the future gets the result's JSON bytes."""
        payload = self._request(name, args, kwargs or {}, tagged, version)
        loop = asyncio.get_running_loop()
        self._bind_loop(loop)
        with self._lock:
            self._check_open()
            worker = self._idle.pop() if self._idle else None
            call = _Call(
                self, loop, name, payload, time.monotonic() + self.timeout_for(name, timeout)
            )
            if worker is None:
                self._waiters.append(call)
        if worker is not None:
            call.run(worker)
        return call.result

    async def call_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
    ) -> bytes:
        return await self.submit_json(
            name, args, kwargs, tagged=tagged, timeout=timeout, version=version
        )

    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Call from synchronous code (not from inside the event loop serving the pool)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                raise ConfigError(
                    "call() would block the event loop that serves this pool; await call_json()"
                )
            if loop.is_running():
                pending = asyncio.run_coroutine_threadsafe(
                    self.call_json(name, args, kwargs, timeout=timeout), loop
                )
                return jsoncodec.loads(pending.result())
        if loop is not None:
            self._unbind_loop()
        payload = self._request(name, args, kwargs or {}, True)
        deadline = time.monotonic() + self.timeout_for(name, timeout)
        worker = self._acquire_sync(deadline, name)
        try:
            worker.send(payload)
            frame = worker.wait_frame(deadline)
        except TimeoutError:  # before OSError: TimeoutError is one
            self._replace(worker, kill=True)
            raise self._timeout(name, "running") from None
        except (EOFError, OSError):
            raise self._crashed(worker, name) from None
        worker.calls += 1
        return jsoncodec.loads(self._outcome(worker, frame, name))


def _to_loop_time(loop: asyncio.AbstractEventLoop, deadline: float) -> float:
    return loop.time() + (deadline - time.monotonic())


def _worker_env(config_json: str) -> dict[str, str]:
    """The worker's environment: ours without ``GF_*`` settings (the token stays in the
    server), plus the worker's config, with this package importable whatever the cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GF_")}
    env[_CONFIG_VAR] = config_json
    here = str(Path(__file__).resolve().parents[2])
    parts = [here, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
