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

The isolated pool keeps persistent worker processes (``python -c`` running
:func:`worker_main`), speaks length-prefixed orjson frames over their stdin/stdout pipes,
and gives every call a deadline (per-function overrides in ``timeouts``). On a deadline
the worker is killed and replaced (:class:`~globalfunc.errors.ExecutionTimeout`); a worker
that dies (``os._exit``, a segfault, a signal) or exceeds its ``RLIMIT_AS`` memory cap is
replaced and the call fails with :class:`~globalfunc.errors.WorkerCrashed`.

What it does not do: the inline executor cannot stop a function that hangs (a timeout
there needs isolation), a new registry version is picked up only when the caller passes its
hash as ``version`` (the HTTP server does), and there is no cross-machine scheduling (Ray and
the worker registry are separate layers).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import (
    BadArguments,
    ConfigError,
    ExecutionError,
    ExecutionTimeout,
    GlobalFuncError,
    InvalidRequest,
    WorkerCrashed,
    error_from_dict,
)

if TYPE_CHECKING:
    from gfgo.resolve import Resolver

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

log = logging.getLogger(__name__)
call_log = logging.getLogger("globalfunc.call")

DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY_LIMIT_MB = 2048
_HEADER = struct.Struct(">I")
_OK, _ERR, _ERR_EXITING, _READY = b"0", b"1", b"2", b"R"
_READ_CHUNK = 1 << 16


# -- argument checking -----------------------------------------------------------------------
class ArgSpec:
    """A function's signature compiled for a fast argument check (``inspect`` on mismatch)."""

    __slots__ = ("_names", "_required", "_signature", "text")

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        sig = inspect.signature(func)
        self._signature = sig
        self.text = f"{name}{sig}"
        kinds = inspect.Parameter
        params = sig.parameters.values()
        self._names: frozenset[str] | None = (
            None
            if any(p.kind is kinds.VAR_KEYWORD for p in params)
            else frozenset(
                p.name
                for p in params
                if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
            )
        )
        if any(p.kind is kinds.POSITIONAL_ONLY and p.default is p.empty for p in params):
            self._names = frozenset()  # keyword-only fast path never applies
        self._required = frozenset(
            p.name
            for p in params
            if p.default is p.empty and p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        )

    def check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`BadArguments` (showing the signature) if the call would not bind."""
        names = self._names
        if not args and names and kwargs.keys() <= names and self._required <= kwargs.keys():
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(
                f"arguments do not fit {self.text}: {exc}", signature=self.text
            ) from None


def _user_error(name: str, exc: BaseException, debug: bool) -> ExecutionError:
    kind = type(exc).__qualname__
    module = type(exc).__module__
    full = kind if module == "builtins" else f"{module}.{kind}"
    text = str(exc)
    details: dict[str, Any] = {"function": name, "exc_type": full, "exc_message": text}
    if debug:
        details["traceback"] = "".join(traceback.format_exception(exc))
    err = ExecutionError(f"{name} raised {full}: {text}", **details)
    err.__cause__ = exc
    return err


# -- the common surface ------------------------------------------------------------------
class Executor(Protocol):
    """Runs functions by call name; ``call_json`` returns the result serialized."""

    mode: str

    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any: ...

    async def call_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
    ) -> bytes: ...

    def submit_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
    ) -> bytes | Awaitable[bytes]:
        """Like ``call_json``, but returns the bytes at once when the call already ran."""
        ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Calls functions in this process on the caller's thread: for trusted code.

    A function that hangs blocks the caller (and a server's event loop); timeouts are
    accepted for interface compatibility but cannot be enforced here.
    """

    mode = "inline"

    def __init__(self, resolver: Resolver, *, debug: bool = False) -> None:
        self.resolver = resolver
        self.debug = debug
        self._functions = _FunctionCache(resolver)

    def _prepare(self, name: str, version: str | None) -> tuple[Callable[..., Any], ArgSpec]:
        # Without a version, ask the resolver each time so GFGo reloads take effect.
        return self._functions.prepare(name, version, trust_cache=False)

    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        func, spec = self._prepare(name, None)
        kw = kwargs or {}
        spec.check(args, kw)
        try:
            result = func(*args, **kw)
            if inspect.isawaitable(result):
                result = _run_coroutine(result)
        except (Exception, SystemExit) as exc:
            raise _user_error(name, exc, self.debug) from exc
        return result

    def submit_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
    ) -> bytes | Awaitable[bytes]:
        func, spec = self._prepare(name, version)
        kw = kwargs or {}
        spec.check(args, kw)
        try:
            result = func(*args, **kw)
        except (Exception, SystemExit) as exc:
            raise _user_error(name, exc, self.debug) from exc
        if inspect.isawaitable(result):
            return self._await_json(name, result, tagged)
        return jsoncodec.dumps(result, tagged=tagged)

    async def _await_json(self, name: str, awaitable: Awaitable[Any], tagged: bool) -> bytes:
        try:
            result = await awaitable
        except (Exception, SystemExit) as exc:
            raise _user_error(name, exc, self.debug) from exc
        return jsoncodec.dumps(result, tagged=tagged)

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
        out = self.submit_json(name, args, kwargs, tagged=tagged, version=version)
        return out if isinstance(out, bytes) else await out

    def stats(self) -> dict[str, int]:
        return {"workers": 0, "busy": 0, "replaced": 0}

    def close(self) -> None:
        """Nothing to release."""


class _FunctionCache:
    """Resolved functions with their compiled signatures and the hash they were loaded at."""

    __slots__ = ("entries", "resolver")

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.entries: dict[str, tuple[Callable[..., Any], ArgSpec, str | None]] = {}

    def prepare(
        self, name: str, version: str | None, *, trust_cache: bool
    ) -> tuple[Callable[..., Any], ArgSpec]:
        """The function and its ArgSpec; a known ``version`` skips name parsing and look-up."""
        entry = self.entries.get(name)
        if entry is not None and (
            (version is not None and entry[2] == version) or (version is None and trust_cache)
        ):
            return entry[0], entry[1]
        func = _resolve_version(self.resolver, name, version)
        held = self.resolver.record(name)
        spec = entry[1] if entry is not None and entry[0] is func else ArgSpec(name, func)
        self.entries[name] = (func, spec, held.sha256 if held is not None else None)
        return func, spec


def _resolve_version(resolver: Resolver, name: str, version: str | None) -> Callable[..., Any]:
    """Resolve ``name``; if the resolver holds another version than ``version``, reload it."""
    func = resolver.resolve(name)
    if version is not None:
        held = resolver.record(name)
        if held is not None and held.sha256 != version:
            resolver.invalidate(name.rsplit(".", 1)[0])
            func = resolver.resolve(name)
    return func


def _run_coroutine(awaitable: Awaitable[Any]) -> Any:
    async def wrap() -> Any:
        return await awaitable

    return asyncio.run(wrap())


# -- the isolated pool -------------------------------------------------------------------
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
    """A caller waiting for a free worker: an asyncio future or a concurrent one."""

    __slots__ = ("fut", "loop")

    def __init__(
        self, fut: asyncio.Future[_Worker] | Future[_Worker], loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.fut = fut
        self.loop = loop

    def offer(self, worker: _Worker, give_back: Callable[[_Worker], None]) -> bool:
        """Hand ``worker`` over; False if the waiter already gave up."""
        fut = self.fut
        if fut.done():
            return False
        if self.loop is None:
            assert isinstance(fut, Future)
            if not fut.set_running_or_notify_cancel():
                return False
            fut.set_result(worker)
            return True
        assert isinstance(fut, asyncio.Future)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            fut.set_result(worker)
        else:  # released from another thread: deliver on the waiter's loop
            self.loop.call_soon_threadsafe(_deliver, fut, worker, give_back)
        return True


def _deliver(
    fut: asyncio.Future[_Worker], worker: _Worker, give_back: Callable[[_Worker], None]
) -> None:
    if fut.done():
        give_back(worker)
    else:
        fut.set_result(worker)


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

    @property
    def fut(self) -> asyncio.Future[bytes]:
        return self.result

    def offer(self, worker: _Worker, give_back: Callable[[_Worker], None]) -> bool:
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
        self._argv = [
            python,
            "-c",
            "import sys; from globalfunc.executor import worker_main; "
            "sys.exit(worker_main(sys.argv[1]))",
            orjson.dumps(config).decode(),
        ]
        self._env = _worker_env()
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
            if self._waiters.popleft().offer(worker, self._release):
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
            self._waiters.append(_Waiter(fut, None))
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


def _worker_env() -> dict[str, str]:
    """The worker's environment: ours, with this package importable whatever the cwd."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[1])
    parts = [here, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


# -- the worker process --------------------------------------------------------------------
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


def _read_exact(stream: Any, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = stream.read(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _write_frame(stream: Any, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
