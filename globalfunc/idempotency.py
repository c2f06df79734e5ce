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

The same :class:`CallGuard` counts the calls in flight on the worker (its heartbeat
publishes the count for the clients' least-outstanding-requests choice) and, when the
worker drains, refuses new calls with 503 so that clients take them elsewhere.

One guard per process, installed by the worker (:func:`install`); ``gf serve`` installs
none, so there keys are ignored and the call path is untouched. Redis errors while
claiming or recording fail the call with :class:`~globalfunc.errors.StorageUnavailable`
(503: nothing ran) when claiming, and are logged when recording (the answer still goes
out; a retry of that key would then run again).

Not here: choosing keys and resending (:mod:`globalfunc.client`), the worker's life
(``server.worker``). Nothing here reads settings.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis

from globalfunc.errors import GlobalFuncError, InvalidRequest, Overloaded, error_from_dict
from globalfunc.storage.redis import redis_errors

__all__ = ["DEFAULT_TTL", "CallGuard", "Outcome", "OutcomeRecord", "current", "install"]

log = logging.getLogger(__name__)

DEFAULT_TTL = 600.0
_KEY_MAX = 200
_POLL = 0.02  # seconds between looks at a key another request is running
_PROBE_EVERY = 1.0  # seconds between checks that the worker running it is alive

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


class OutcomeRecord:
    """The keys' outcomes in Redis (``<prefix>idem:<key>``), kept ``ttl`` seconds."""

    def __init__(
        self,
        url: str | None = None,
        *,
        ttl: float = DEFAULT_TTL,
        prefix: str = "gf:",
        timeout: float = 2.0,
        client: Any | None = None,
    ) -> None:
        if not ttl > 0:
            from globalfunc.errors import ConfigError

            raise ConfigError(f"GF_IDEMPOTENCY_TTL must be positive seconds, got {ttl!r}")
        self.ttl_ms = max(1, int(ttl * 1000))
        self.prefix = prefix
        self.url = url or "redis"
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
        with self._errors(f"claim key {key!r}"):
            if self._redis.set(self.key(key), mine, nx=True, px=self.ttl_ms):
                return None
            raw = self._redis.get(self.key(key))
        if raw is None:  # it was released or expired between the two: try again
            return self.claim(key, owner)
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


def _port_open(url: str, timeout: float) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


class CallGuard:
    """A worker's calls: in flight, draining, and run once per key (see the module).

    ``owner`` is ``"<worker name> <pid>"``; ``alive(name, pid)`` says whether that worker
    is registered with that pid (the worker directory) and ``url_of`` where it listens.
    """

    def __init__(
        self,
        record: OutcomeRecord,
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
        self.inflight += 1
        return self._keyed(check_key(key), run)

    async def _counted(self, pending: Awaitable[bytes]) -> bytes:
        try:
            return await pending
        finally:
            self.inflight -= 1

    async def _keyed(self, key: str, run: Run) -> bytes:
        try:
            seen = self.record.claim(key, self.owner)
            while seen is not None:
                if not seen.running:
                    return seen.answer()
                seen = await self._wait(key, seen)
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
                dead = not await asyncio.to_thread(self._owner_alive, seen.owner)
                if dead and self.record.take_over(key, seen, self.owner):
                    log.warning(
                        "key %s: its worker %s died mid-call; running it again", key, seen.owner
                    )
                    return None
            await asyncio.sleep(_POLL)
            current = self.record.look(key)
            if current is None:  # released (nothing ran): claim it
                claimed = self.record.claim(key, self.owner)
                if claimed is None:
                    return None
                current = claimed
            if not current.running or current.raw != seen.raw:
                return current
            seen = current

    def _owner_alive(self, owner: str) -> bool:
        if owner == self.owner:
            return True
        url = self._alive(owner)
        return url is not None and _port_open(url, self.probe_timeout)

    async def _run(self, key: str, run: Run) -> bytes:
        try:
            out = run()
            if not isinstance(out, bytes):
                out = await out
        except GlobalFuncError as err:
            if err.http_status == 503:  # nothing ran: the next try should run
                self._forget(key)
            else:
                self._keep(key, err.http_status, orjson.dumps(err.to_dict()))
            raise
        except BaseException:
            self._forget(key)
            raise
        self._keep(key, 200, out)
        return out

    def _keep(self, key: str, status: int, body: bytes) -> None:
        try:
            self.record.record(key, status, body)
        except GlobalFuncError as exc:
            log.warning("key %s: its outcome was not recorded: %s", key, exc.message)

    def _forget(self, key: str) -> None:
        try:
            self.record.release(key, self.owner)
        except GlobalFuncError as exc:
            log.warning("key %s: its claim was not released: %s", key, exc.message)


_GUARD: CallGuard | None = None


def install(guard: CallGuard | None) -> None:
    """Make ``guard`` the one every call of this process goes through (``None``: none)."""
    global _GUARD
    _GUARD = guard


def current() -> CallGuard | None:
    """The installed guard (``server.worker`` installs one; ``gf serve`` none)."""
    return _GUARD
