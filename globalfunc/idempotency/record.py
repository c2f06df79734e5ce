"""The outcome record: each idempotency key's entry in Redis, read and written.

:class:`OutcomeRecord` is synchronous (redis-py), for clients and tools: ``GFClient``
asks it whether any worker claimed a key. :class:`AsyncOutcomeRecord` is the same record
on the running event loop (``redis.asyncio``), for the worker: a slow or stopped Redis
holds only the requests that wait on it, never the loop.

Every entry is named ``<prefix>idem:<scope>:<key>`` (:class:`~globalfunc.idempotency.entry.CallKey`;
a plain string is the anonymous scope) and lives ``ttl`` seconds, or at most
:data:`~globalfunc.idempotency.entry.CLIENT_KEY_TTL` for a key the client made up. An
answer over ``max_result`` bytes is recorded as "ran, not kept" (its size only). A Redis
at its ``maxmemory`` that refuses a claim is :class:`~globalfunc.errors.StorageUnavailable`
naming the fix.

The worker's costs, kept low with the library's own means: a claim is one command
(``SET NX GET``: the claim and the look at what was there, one round trip); outcomes are
queued and sent in one ``redis.asyncio`` pipeline with the next claim, or alone
``linger`` seconds later. Every asynchronous operation is bounded by ``timeout`` as a
whole (a pooled connection, connecting, the answer) and tried once; past it,
:class:`~globalfunc.errors.StorageUnavailable`.

Not here: what a request does with an entry (:mod:`globalfunc.idempotency.guard`), the
entry's format (:mod:`globalfunc.idempotency.entry`). Nothing here reads settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from globalfunc.errors import GlobalFuncError, StorageError, StorageUnavailable
from globalfunc.idempotency.entry import (
    CLIENT_KEY_TTL,
    DEFAULT_MAX_RESULT,
    DEFAULT_TTL,
    RELEASE,
    RENEW,
    TAKE_OVER,
    CallKey,
    Outcome,
    done_entry,
    running_entry,
    ttl_ms,
)
from globalfunc.storage.base import redact_url
from globalfunc.storage.redis_errors import redis_errors

__all__ = ["AsyncOutcomeRecord", "OutcomeRecord"]

LINGER = 0.01  # seconds an outcome waits for a claim to share its round trip
POOL = 64  # connections to Redis per worker; a call waits for one at most the timeout

_Pending = tuple[str, bytes, int, "asyncio.Future[None]"]  # name, entry, px, done when written
_CLIENT_TTL_MS = int(CLIENT_KEY_TTL * 1000)


def _call_key(key: str) -> CallKey:
    return key if isinstance(key, CallKey) else CallKey(key)


def _name(prefix: str, key: str) -> str:
    return f"{prefix}idem:{_call_key(key).name}"


def _px(ttl: int, key: str) -> int:
    return min(ttl, _CLIENT_TTL_MS) if getattr(key, "client_made", False) else ttl


def _claim_entry(key: str, owner: str) -> bytes:
    call = _call_key(key)
    return running_entry(call.fp, owner, call.client_made)


def _adopt(key: str, seen: Outcome) -> None:
    """A take-over keeps the key's TTL as its first claim decided (``seen``), not as the
    taking request's headers say: ``key`` is told so for its renewals and outcome."""
    if isinstance(key, CallKey):
        key.client_made = seen.short


def _full(url: str, what: str, reply: object) -> StorageUnavailable | None:
    """The error for a Redis that refused a write because it is at its ``maxmemory``."""
    text = str(reply)
    if "OOM" not in text and "maxmemory" not in text:
        return None
    return StorageUnavailable(
        f"Redis at {url} (the idempotency record) is full (maxmemory) and refused to {what}; "
        "nothing ran. Raise its maxmemory, keep 'maxmemory-policy noeviction', or lower "
        "GF_IDEMPOTENCY_TTL / GF_IDEMPOTENCY_MAX_RESULT_KB",
        url=url,
    )


class OutcomeRecord:
    """The keys' outcomes in Redis (``<prefix>idem:<key>``), read and written synchronously.

    For clients and tools; a worker uses :class:`AsyncOutcomeRecord` on its event loop.
    ``client`` (a ``redis.Redis``) replaces the connection made from ``url``.
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
        self.ttl_ms = ttl_ms(ttl)
        self.prefix = prefix
        self.url = redact_url(url) if url else "redis"
        if client is None:
            if url is None:
                raise ValueError("OutcomeRecord needs a Redis URL or a client")
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self._redis: Any = client
        self._take_over = self._redis.register_script(TAKE_OVER)
        self._release = self._redis.register_script(RELEASE)

    def key(self, key: str) -> str:
        return _name(self.prefix, key)

    def _errors(self, what: str) -> Any:
        return redis_errors(self.url, what, role="the idempotency record")

    def claim(self, key: str, owner: str) -> Outcome | None:
        """``None`` when ``owner`` now runs ``key``; else what the entry says."""
        entry = _claim_entry(key, owner)
        with self._errors(f"claim key {key!r}"):
            raw = self._redis.set(self.key(key), entry, nx=True, px=_px(self.ttl_ms, key), get=True)
        return None if raw is None else Outcome.parse(raw)

    def look(self, key: str) -> Outcome | None:
        with self._errors(f"read key {key!r}"):
            raw = self._redis.get(self.key(key))
        return None if raw is None else Outcome.parse(raw)

    def take_over(self, key: str, seen: Outcome, owner: str) -> bool:
        """Claim ``key`` from a dead owner; ``False`` if another request was first."""
        key = _call_key(key)
        _adopt(key, seen)
        with self._errors(f"take over key {key!r}"):
            return bool(
                self._take_over(
                    keys=[self.key(key)],
                    args=[seen.raw, _claim_entry(key, owner), _px(self.ttl_ms, key)],
                )
            )

    def record(self, key: str, status: int, body: bytes) -> None:
        entry = done_entry(_call_key(key).fp, status, body)
        with self._errors(f"record key {key!r}"):
            self._redis.set(self.key(key), entry, px=_px(self.ttl_ms, key))

    def release(self, key: str, owner: str) -> None:
        with self._errors(f"release key {key!r}"):
            self._release(keys=[self.key(key)], args=[_claim_entry(key, owner)])

    def close(self) -> None:
        self._redis.close()


class AsyncOutcomeRecord:
    """The same record, on the running event loop (``redis.asyncio``); for the worker.

    Up to ``pool_size`` connections carry the requests' commands; outcomes go in one
    pipeline with the next claim (:meth:`record`). The connections belong to the loop
    that made them; a new loop (a server started again in the same process) gets new ones.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = DEFAULT_TTL,
        prefix: str = "gf:",
        timeout: float = 2.0,
        linger: float = LINGER,
        pool_size: int = POOL,
        max_result: int = DEFAULT_MAX_RESULT,
    ) -> None:
        self.ttl_ms = ttl_ms(ttl)
        self.max_result = max_result
        self.prefix = prefix
        self.timeout = timeout
        self.linger = linger
        self.pool_size = pool_size
        self._url = url
        self.url = redact_url(url)
        self._client: aredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Pending] = []  # outcomes waiting for the next round trip
        self._flusher: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    def key(self, key: str) -> str:
        return _name(self.prefix, key)

    def _redis(self) -> aredis.Redis:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            pool = aredis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=self.pool_size,
                timeout=self.timeout,  # waiting for a free connection
                socket_connect_timeout=self.timeout,
                # no socket_timeout: asyncio.timeout bounds each operation as a whole,
                # and a read the timeout cancels disconnects its connection
                retry=Retry(NoBackoff(), 0),  # one try; the caller's timeout bounds it
            )
            self._client = aredis.Redis(connection_pool=pool)
            self._loop = loop
        return self._client

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            with redis_errors(self.url, what, role="the idempotency record"):
                yield
        except StorageError as exc:
            full = None if isinstance(exc, StorageUnavailable) else _full(self.url, what, exc)
            if full is not None:
                raise full from exc
            raise
        except TimeoutError:  # asyncio.timeout's, not redis-py's
            raise StorageUnavailable(
                f"Redis at {self.url} (the idempotency record) did not answer within "
                f"{self.timeout:g}s while trying to {what}; check that redis-server is "
                "running and not overloaded",
                url=self.url,
            ) from None

    async def _do(self, what: str, *args: Any) -> Any:
        with self._errors(what):
            async with asyncio.timeout(self.timeout):
                return await self._redis().execute_command(*args)

    async def claim(self, key: str, owner: str) -> Outcome | None:
        """``None`` when ``owner`` now runs ``key``; else what the entry says.

        One round trip: ``SET NX GET`` answers the entry that was there (nil when it set
        it), in one pipeline after the outcomes waiting to be written (:meth:`record`).
        The same owner's claim is another request of this worker running the key."""
        what = f"claim key {key!r}"
        px = _px(self.ttl_ms, key)
        claim = (self.key(key), _claim_entry(key, owner), px)
        pending = self._take_pending()
        if pending:
            raw = await self._send(pending, what, claim)
        else:
            with self._errors(what):
                async with asyncio.timeout(self.timeout):
                    raw = await self._redis().set(claim[0], claim[1], nx=True, px=px, get=True)
        return None if raw is None else Outcome.parse(raw)

    async def look(self, key: str) -> Outcome | None:
        raw = await self._do(f"read key {key!r}", "GET", self.key(key))
        return None if raw is None else Outcome.parse(raw)

    async def take_over(self, key: str, seen: Outcome, owner: str) -> bool:
        """Claim ``key`` from a dead owner; ``False`` if another request was first. The
        claim keeps the TTL its first claim chose (``key`` is told, see :func:`_adopt`)."""
        _adopt(key, seen)
        args = (seen.raw, _claim_entry(key, owner), _px(self.ttl_ms, key))
        done = await self._do(f"take over key {key!r}", "EVAL", TAKE_OVER, 1, self.key(key), *args)
        return bool(done)

    async def release(self, key: str, owner: str) -> None:
        """Drop ``owner``'s claim of ``key`` (nothing ran), if it is still there."""
        entry = _claim_entry(key, owner)
        await self._do(f"release key {key!r}", "EVAL", RELEASE, 1, self.key(key), entry)

    async def renew(self, key: str, owner: str) -> str | Outcome:
        """Give ``owner``'s claim of ``key`` its full TTL again: ``"renewed"``; ``"restored"``
        when the claim had expired meanwhile (Redis unreachable past the TTL) and was set
        again; else the entry that holds the key now (another request's claim or outcome)."""
        entry = _claim_entry(key, owner)
        px = _px(self.ttl_ms, key)
        done = await self._do(f"renew key {key!r}", "EVAL", RENEW, 1, self.key(key), entry, px)
        if done == 1:
            return "renewed"
        if done == 2:
            return "restored"
        return Outcome.parse(done)

    def renew_every(self, key: str) -> float:
        """Seconds between renewals of ``key``'s claim while its call runs (a third of its TTL)."""
        return _px(self.ttl_ms, key) / 3000

    def record(self, key: str, status: int, body: bytes) -> asyncio.Future[None]:
        """Write ``key``'s outcome: with the next claim (one round trip for both), or
        ``linger`` seconds from now, whichever comes first. The future is done when Redis
        has it, or holds the :class:`~globalfunc.errors.StorageError` that kept it out."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        entry = done_entry(_call_key(key).fp, status, body, self.max_result)
        self._pending.append((self.key(key), entry, _px(self.ttl_ms, key), done))
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

    async def _send(
        self, pending: list[_Pending], what: str, claim: tuple[str, bytes, int] | None
    ) -> Any:
        """The ``pending`` outcomes and then ``claim`` (name, entry, px; ``SET NX GET``) in
        one pipeline (one round trip); the reply to the claim."""
        try:
            with self._errors(what):
                async with asyncio.timeout(self.timeout):
                    pipe = self._redis().pipeline(transaction=False)
                    for name, value, px, _ in pending:
                        pipe.set(name, value, px=px)
                    if claim is not None:
                        pipe.set(claim[0], claim[1], nx=True, px=claim[2], get=True)
                    replies = await pipe.execute(raise_on_error=False)
        except GlobalFuncError as exc:
            for _, _, _, done in pending:
                if not done.done():
                    done.set_exception(exc)
            raise
        for (name, _, _, done), reply in zip(pending, replies, strict=False):
            if done.done():
                continue
            if isinstance(reply, Exception):
                done.set_exception(
                    StorageError(f"Redis at {self.url} refused to record {name!r}: {reply}")
                )
            else:
                done.set_result(None)
        if claim is None:
            return None
        reply = replies[-1]
        if isinstance(reply, Exception):
            raise _full(self.url, what, reply) or StorageError(
                f"Redis at {self.url} failed to {what}: {reply}", url=self.url
            )
        return reply

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose(close_connection_pool=True)
