"""The outcome record: one call per idempotency key, across every worker sharing a Redis.

A client sends every call with an ``Idempotency-Key``. A worker that receives one first
*claims* the key in Redis (``SET gf:idem:<key> R<worker> <pid> NX``), runs the call, and
*records* its outcome under the same key for ``ttl`` seconds (``GF_IDEMPOTENCY_TTL``,
default 600). A second request with that key, on any worker:

- finds the outcome: it gets the recorded answer (result or error) without running again;
- finds the key running on a live worker (its directory entry is there with the same
  pid, and its port accepts connections): it waits for that outcome;
- finds the key running on a dead worker: it takes the claim over (atomically, so only
  one request does) and runs the call again. That is the one case in which a function
  runs twice: it was mid-run on a worker that died.

A refusal that ran nothing (an HTTP 503: ``Overloaded``, a pool that is stopping) drops
the claim instead of recording it, so the next try runs.

Cost and faults. The worker talks to Redis over one pipelined connection on its event
loop (:class:`AsyncOutcomeRecord`, :mod:`globalfunc.redis_pipe`), never blocking it: while Redis is slow or stopped only the
keyed calls wait on it; keyless calls and ``/healthz`` go on. One round trip is on a
call's path, the claim (``SET NX GET``), before the function runs; the outcome is queued
as the answer goes out and written in the same pipeline as the next claim, or alone
10 ms later (the call stays counted in flight until it lands, so a drain waits for it). A claim Redis does not answer within ``timeout`` (the storage
timeout, default 2 s) fails the call with :class:`~globalfunc.errors.StorageUnavailable`
(503: nothing ran, the client moves on to another worker) and a warning in the log: a
keyed call never runs without its claim. A failed record is logged; the answer has gone
out, and a retry of that key waits for the claim (its worker is alive) until its TTL.

The same :class:`CallGuard` counts the calls in flight on the worker (its heartbeat
publishes the count for the clients' least-outstanding-requests choice) and, when the
worker drains, refuses new calls with 503 so that clients take them elsewhere.

One guard per process, installed by the worker (:func:`install`); ``gf serve`` installs
none, so there keys are ignored and the call path is untouched. :class:`OutcomeRecord`
reads the same record synchronously, for clients (did any worker claim this key?).

Not here: choosing keys and resending (:mod:`globalfunc.client`), the worker's life
(``server.worker``). Nothing here reads settings.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import orjson
import redis

from globalfunc.errors import (
    GlobalFuncError,
    InvalidRequest,
    Overloaded,
    StorageError,
    StorageUnavailable,
    error_from_dict,
)
from globalfunc.redis_pipe import Arg, RedisPipe
from globalfunc.storage.base import redact_url
from globalfunc.storage.redis import redis_errors

__all__ = [
    "DEFAULT_TTL",
    "AsyncOutcomeRecord",
    "CallGuard",
    "Outcome",
    "OutcomeRecord",
    "current",
    "install",
]

log = logging.getLogger(__name__)

DEFAULT_TTL = 600.0
_KEY_MAX = 200
_POLL = 0.02  # seconds between looks at a key another request is running
_PROBE_EVERY = 1.0  # seconds between checks that the worker running it is alive
_UNCLAIM_EVERY = 0.5  # seconds between tries to drop a claim a failed request may have left
_UNCLAIM_TRIES = 120
_LINGER = 0.01  # seconds an outcome waits for a claim to share its round trip

_Pending = tuple[str, bytes, "asyncio.Future[None]"]  # key, entry, done when written
# replace the claim only if it is still the one we saw (a dead worker's)
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

Run = Callable[[], "bytes | Awaitable[bytes]"]


class Outcome:
    """What a key's entry says: ``running`` (by ``owner``), or ``done`` (status, body)."""

    __slots__ = ("body", "owner", "raw", "status")

    def __init__(
        self, raw: bytes, owner: str | None, status: int | None, body: bytes | None
    ) -> None:
        self.raw = raw
        self.owner = owner
        self.status = status
        self.body = body

    @property
    def running(self) -> bool:
        return self.owner is not None

    @classmethod
    def parse(cls, raw: bytes) -> Outcome:
        if raw[:1] == b"R":
            return cls(raw, raw[1:].decode("utf-8", "replace"), None, None)
        return cls(raw, None, int(raw[1:4]), raw[4:])

    def answer(self) -> bytes:
        """The recorded result, or the recorded error raised again."""
        assert self.status is not None and self.body is not None
        if self.status == 200:
            return self.body
        raise error_from_dict(orjson.loads(self.body), self.status)


def check_key(key: str) -> str:
    """``key`` if it can be an idempotency key (1-200 visible ASCII characters)."""
    if not (0 < len(key) <= _KEY_MAX) or not all("!" <= c <= "~" for c in key):
        raise InvalidRequest(
            f"Idempotency-Key {key[:60]!r} must be 1-{_KEY_MAX} visible ASCII characters; "
            "the client makes one per call (a UUID) when none is given"
        )
    return key


def _ttl_ms(ttl: float) -> int:
    if not ttl > 0:
        from globalfunc.errors import ConfigError

        raise ConfigError(f"GF_IDEMPOTENCY_TTL must be positive seconds, got {ttl!r}")
    return max(1, int(ttl * 1000))


class OutcomeRecord:
    """The keys' outcomes in Redis (``<prefix>idem:<key>``), read and written synchronously.

    For clients and tools (``GFClient`` asks whether any worker claimed a key); a worker
    uses :class:`AsyncOutcomeRecord` on its event loop.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        ttl: float = DEFAULT_TTL,
        prefix: str = "gf:",
        timeout: float = 2.0,
        client: Any | None = None,
    ) -> None:
        self.ttl_ms = _ttl_ms(ttl)
        self.prefix = prefix
        self.url = redact_url(url) if url else "redis"
        if client is None:
            assert url is not None
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self._redis: Any = client
        self._take_over = self._redis.register_script(_TAKE_OVER)
        self._release = self._redis.register_script(_RELEASE)

    def key(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def _errors(self, what: str) -> Any:
        return redis_errors(self.url, what, role="the idempotency record")

    def claim(self, key: str, owner: str) -> Outcome | None:
        """``None`` when ``owner`` now runs ``key``; else what the entry says."""
        mine = b"R" + owner.encode()
        while True:
            with self._errors(f"claim key {key!r}"):
                if self._redis.set(self.key(key), mine, nx=True, px=self.ttl_ms):
                    return None
                raw = self._redis.get(self.key(key))
            if raw is not None:  # else released or expired between the two: try again
                return Outcome.parse(raw)

    def look(self, key: str) -> Outcome | None:
        with self._errors(f"read key {key!r}"):
            raw = self._redis.get(self.key(key))
        return None if raw is None else Outcome.parse(raw)

    def take_over(self, key: str, seen: Outcome, owner: str) -> bool:
        """Claim ``key`` from a dead owner; ``False`` if another request was first."""
        with self._errors(f"take over key {key!r}"):
            return bool(
                self._take_over(
                    keys=[self.key(key)], args=[seen.raw, b"R" + owner.encode(), self.ttl_ms]
                )
            )

    def record(self, key: str, status: int, body: bytes) -> None:
        with self._errors(f"record key {key!r}"):
            self._redis.set(self.key(key), b"D%03d" % status + body, px=self.ttl_ms)

    def release(self, key: str, owner: str) -> None:
        with self._errors(f"release key {key!r}"):
            self._release(keys=[self.key(key)], args=[b"R" + owner.encode()])

    def close(self) -> None:
        self._redis.close()


class AsyncOutcomeRecord:
    """The same record, on the running event loop; for the worker.

    One pipelined connection (:class:`~globalfunc.redis_pipe.RedisPipe`) carries every
    request's commands. Each operation is bounded by ``timeout`` seconds as a whole
    (connecting, the answer) and tried once: past it,
    :class:`~globalfunc.errors.StorageUnavailable`. The connection belongs to the loop
    that made it; a new loop (a server started again in the same process) gets a new one.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = DEFAULT_TTL,
        prefix: str = "gf:",
        timeout: float = 2.0,
        linger: float = _LINGER,
    ) -> None:
        self.ttl_ms = _ttl_ms(ttl)
        self.prefix = prefix
        self.timeout = timeout
        self.url = redact_url(url)
        self.linger = linger
        self._redis = RedisPipe(url)
        self._pending: list[_Pending] = []  # outcomes waiting for the next round trip
        self._flusher: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    def key(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            with redis_errors(self.url, what, role="the idempotency record"):
                yield
        except TimeoutError:
            raise StorageUnavailable(
                f"Redis at {self.url} (the idempotency record) did not answer within "
                f"{self.timeout:g}s while trying to {what}; check that redis-server is "
                "running and not overloaded",
                url=self.url,
            ) from None

    async def _do(self, what: str, *args: Arg) -> Any:
        with self._errors(what):
            async with asyncio.timeout(self.timeout):
                return await self._redis.execute(*args)

    def _set_claim(self, key: str, owner: str) -> list[Arg]:
        return ["SET", self.key(key), b"R" + owner.encode(), "NX", "PX", self.ttl_ms, "GET"]

    async def claim(self, key: str, owner: str) -> Outcome | None:
        """``None`` when ``owner`` now runs ``key``; else what the entry says.

        One round trip: ``SET NX GET`` answers the entry that was there (nil when it set
        it), pipelined after the outcomes waiting to be written (:meth:`record`)."""
        what = f"claim key {key!r}"
        pending = self._take_pending()
        if pending:
            raw = await self._send(pending, what, self._set_claim(key, owner))
        else:
            raw = await self._do(what, *self._set_claim(key, owner))
        # the same owner's claim is another request of this worker running the key
        return None if raw is None else Outcome.parse(raw)

    async def look(self, key: str) -> Outcome | None:
        raw = await self._do(f"read key {key!r}", "GET", self.key(key))
        return None if raw is None else Outcome.parse(raw)

    async def take_over(self, key: str, seen: Outcome, owner: str) -> bool:
        """Claim ``key`` from a dead owner; ``False`` if another request was first."""
        done = await self._do(
            f"take over key {key!r}",
            "EVAL",
            _TAKE_OVER,
            1,
            self.key(key),
            seen.raw,
            b"R" + owner.encode(),
            self.ttl_ms,
        )
        return bool(done)

    def record(self, key: str, status: int, body: bytes) -> asyncio.Future[None]:
        """Write ``key``'s outcome: with the next claim (one round trip for both), or
        ``linger`` seconds from now, whichever comes first. The future is done when Redis
        has it, or holds the :class:`~globalfunc.errors.StorageError` that kept it out."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((self.key(key), b"D%03d" % status + body, done))
        if self._flusher is None:
            self._flusher = loop.call_later(self.linger, self._flush)
        return done

    def _take_pending(self) -> list[_Pending]:
        pending, self._pending = self._pending, []
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        return pending

    def _flush(self) -> None:
        self._flusher = None
        pending = self._take_pending()
        if pending:
            task = asyncio.ensure_future(self._send_quietly(pending))
            self._flushing.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._flushing.discard)

    async def _send_quietly(self, pending: list[_Pending]) -> None:
        with suppress(GlobalFuncError):  # each outcome's future holds the error
            await self._send(pending, "record outcomes", None)

    async def _send(self, pending: list[_Pending], what: str, last: list[Arg] | None) -> Any:
        """The ``pending`` outcomes and then the command ``last`` in one round trip; the
        reply to ``last``."""
        commands: list[list[Arg]] = [
            ["SET", name, value, "PX", self.ttl_ms] for name, value, _ in pending
        ]
        if last is not None:
            commands.append(last)
        try:
            with self._errors(what):
                async with asyncio.timeout(self.timeout):
                    replies = await self._redis.send(*commands)
                    await asyncio.wait(replies)  # in order: all are in once the last is
        except GlobalFuncError as exc:
            for _, _, done in pending:
                if not done.done():
                    done.set_exception(exc)
            raise
        for (name, _, done), reply in zip(pending, replies, strict=False):
            failed = reply.exception()
            if done.done():
                continue
            if failed is None:
                done.set_result(None)
            elif isinstance(failed, redis.ConnectionError):
                done.set_exception(
                    StorageUnavailable(f"Redis at {self.url} was lost while recording {name!r}")
                )
            else:
                done.set_exception(
                    StorageError(f"Redis at {self.url} refused to record {name!r}: {failed}")
                )
        if last is None:
            return None
        with self._errors(what):
            return replies[-1].result()

    async def release(self, key: str, owner: str) -> None:
        await self._do(
            f"release key {key!r}", "EVAL", _RELEASE, 1, self.key(key), b"R" + owner.encode()
        )

    async def aclose(self) -> None:
        self._redis.close()


def _port_open(url: str, timeout: float) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


class CallGuard:
    """A worker's calls: in flight, draining, and run once per key (see the module).

    ``owner`` is ``"<worker name> <pid>"``; ``alive(owner)`` is that worker's URL while it
    is registered with that pid (the worker directory), else ``None``; it may block (it
    runs in a thread).
    """

    def __init__(
        self,
        record: AsyncOutcomeRecord,
        *,
        alive: Callable[[str], str | None],
        probe_timeout: float = 1.0,
    ) -> None:
        self.record = record
        self.owner = f"unnamed {id(self)}"
        self._alive = alive  # owner -> its URL while registered, else None
        self.probe_timeout = probe_timeout
        self.inflight = 0
        self.draining: str | None = None  # why new calls are refused
        # keys this process claimed and runs or is recording: a claim of this worker's
        # that is not here is stale (a claim Redis took after the call gave up on it, an
        # outcome Redis did not take) and a new request for the key takes it over
        self._mine: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the hook Invoker.submit calls ------------------------------------------------------
    def submit(self, key: str | None, run: Run) -> bytes | Awaitable[bytes]:
        if self.draining is not None:
            raise Overloaded(
                f"this worker is {self.draining}: it takes no new calls; send the call to "
                "another worker (GFClient.from_workers does)",
                retry_after=1,
            )
        if key is None:
            self.inflight += 1
            try:
                out = run()
            except BaseException:
                self.inflight -= 1
                raise
            if isinstance(out, bytes):
                self.inflight -= 1
                return out
            return self._counted(out)
        key = check_key(key)
        self.inflight += 1
        return self._keyed(key, run)

    async def _counted(self, pending: Awaitable[bytes]) -> bytes:
        try:
            return await pending
        finally:
            self.inflight -= 1

    async def _keyed(self, key: str, run: Run) -> bytes:
        try:
            try:
                seen = await self.record.claim(key, self.owner)
            except GlobalFuncError as exc:
                log.warning("key %s: refused (503), nothing ran: %s", key, exc.message)
                self._background(self._unclaim(key))
                raise
            while seen is not None:
                if not seen.running:
                    return seen.answer()
                seen = await self._wait(key, seen)
            self._mine.add(key)
            return await self._run(key, run)
        finally:
            self.inflight -= 1

    async def _wait(self, key: str, seen: Outcome) -> Outcome | None:
        """Wait on a key another request runs; ``None`` once this request owns it."""
        probed = -_PROBE_EVERY
        while True:
            now = time.monotonic()
            if now - probed >= _PROBE_EVERY:
                probed = now
                assert seen.owner is not None
                if seen.owner == self.owner:  # this worker knows without asking
                    dead = key not in self._mine
                else:
                    dead = not await asyncio.to_thread(self._owner_alive, seen.owner)
                if dead and await self.record.take_over(key, seen, self.owner):
                    log.warning(
                        "key %s: its worker %s died mid-call; running it again", key, seen.owner
                    )
                    return None
            await asyncio.sleep(_POLL)
            current = await self.record.look(key)
            if current is None:  # released (nothing ran): claim it
                claimed = await self.record.claim(key, self.owner)
                if claimed is None:
                    return None
                current = claimed
            if not current.running or current.raw != seen.raw:
                return current
            seen = current

    def _owner_alive(self, owner: str) -> bool:
        url = self._alive(owner)
        return url is not None and _port_open(url, self.probe_timeout)

    async def _run(self, key: str, run: Run) -> bytes:
        try:
            out = run()
            if not isinstance(out, bytes):
                out = await out
        except GlobalFuncError as err:
            if err.http_status == 503:  # nothing ran: the next try should run
                await self._forget(key)
            else:
                self._keep(key, err.http_status, orjson.dumps(err.to_dict()))
            raise
        except BaseException:
            await self._forget(key)
            raise
        self._keep(key, 200, out)
        return out

    def _keep(self, key: str, status: int, body: bytes) -> None:
        """Record the outcome after the answer goes out (with the next claim, or within
        ``record.linger`` s); the call stays counted in flight until it is written."""
        self.inflight += 1
        self.record.record(key, status, body).add_done_callback(
            lambda done: self._recorded(key, done)
        )

    def _recorded(self, key: str, done: asyncio.Future[None]) -> None:
        self.inflight -= 1
        self._mine.discard(key)
        exc = None if done.cancelled() else done.exception()
        if isinstance(exc, GlobalFuncError):
            log.warning("key %s: its outcome was not recorded: %s", key, exc.message)
        elif exc is not None:
            log.warning("key %s: its outcome was not recorded: %r", key, exc)

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _unclaim(self, key: str) -> None:
        """Drop the claim a request that gave up on Redis may still have left (Redis took
        it late), once Redis answers again, so that other workers need not wait for it."""
        for _ in range(_UNCLAIM_TRIES):
            await asyncio.sleep(_UNCLAIM_EVERY)
            if key in self._mine:  # a new request of this worker runs it now
                return
            try:
                await self.record.release(key, self.owner)
                return
            except GlobalFuncError:
                continue
        log.warning("key %s: a claim Redis may have taken late was not dropped", key)

    async def _forget(self, key: str) -> None:
        try:
            await self.record.release(key, self.owner)
        except GlobalFuncError as exc:
            log.warning("key %s: its claim was not released: %s", key, exc.message)
        finally:
            self._mine.discard(key)


_GUARD: CallGuard | None = None


def install(guard: CallGuard | None) -> None:
    """Make ``guard`` the one every call of this process goes through (``None``: none)."""
    global _GUARD
    _GUARD = guard


def current() -> CallGuard | None:
    """The installed guard (``server.worker`` installs one; ``gf serve`` none)."""
    return _GUARD
