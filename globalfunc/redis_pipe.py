"""One pipelined connection to Redis on the running event loop, for a hot path.

The worker's idempotency record sends one or two commands per call. Through
``redis.asyncio`` each cost about 130 us of CPU on the benchmark machine (pool checkout,
retry wrapper, stream reader, response callbacks); this connection costs about 40 us: it
writes each batch of commands with one ``write`` and resolves one future per reply, in
order, from ``data_received``. Commands from concurrent calls share the connection
(Redis answers in order), so there is no pool and nothing to check out.

What it speaks: RESP2 requests; replies of every RESP2 type (simple string, error as
``redis.ResponseError``, integer, bulk string or nil, array). It connects over TCP, TLS
(``rediss://``) or a Unix socket, from the same URLs as redis-py (parsed by redis-py), and
sends ``AUTH`` and ``SELECT`` when the URL asks for them. A lost connection fails every
waiting reply with ``redis.ConnectionError`` and the next command connects again.

Not here: timeouts (the caller bounds each wait), retries, the meaning of any key.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Sequence
from typing import Any

import redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

__all__ = ["RedisPipe"]

Arg = bytes | str | int


def _encode(args: Sequence[Arg]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


_INCOMPLETE = object()


def _parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply starting at ``pos`` and where the next starts; ``_INCOMPLETE`` when the
    buffer does not hold all of it yet."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind, line = buf[pos : pos + 1], bytes(buf[pos + 1 : end])
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, end + 2
        if len(buf) < end + 4 + size:
            return _INCOMPLETE, pos
        return bytes(buf[end + 2 : end + 2 + size]), end + 4 + size
    if kind == b":":
        return int(line), end + 2
    if kind == b"+":
        return line, end + 2
    if kind == b"-":
        return redis.ResponseError(line.decode("utf-8", "replace")), end + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, end + 2
        items, at = [], end + 2
        for _ in range(count):
            item, at = _parse(buf, at)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, at
    raise redis.InvalidResponse(f"unexpected reply type {kind!r} from Redis")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        try:
            while self.waiting:
                reply, nxt = _parse(buf, pos)
                if reply is _INCOMPLETE:
                    break
                pos = nxt
                done = self.waiting.popleft()
                if done.done():  # its caller gave up waiting
                    continue
                if isinstance(reply, redis.ResponseError):
                    done.set_exception(reply)
                else:
                    done.set_result(reply)
        except (ValueError, redis.InvalidResponse) as exc:
            self._fail(redis.ConnectionError(f"unreadable reply from Redis: {exc}"))
            assert self.transport is not None
            self.transport.abort()
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(redis.ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        while self.waiting:
            done = self.waiting.popleft()
            if not done.done():
                done.set_exception(exc)


class RedisPipe:
    """Commands to the Redis at ``url`` over one connection of the running loop."""

    def __init__(self, url: str) -> None:
        self._options = parse_url(url)
        self._proto: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    def _usable(self) -> _Protocol | None:
        proto = self._proto
        loop = asyncio.get_running_loop()
        if proto is None or proto.lost is not None or self._loop is not loop:
            return None
        return proto

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        o = self._options
        cls = o.get("connection_class")
        if cls is UnixDomainSocketConnection:
            _, proto = await loop.create_unix_connection(_Protocol, o["path"])
        else:
            context = None
            if cls is SSLConnection:
                context = ssl.create_default_context()
                if o.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
            _, proto = await loop.create_connection(
                _Protocol, o.get("host", "localhost"), o.get("port", 6379), ssl=context
            )
        setup: list[list[Arg]] = []
        if o.get("password"):
            user = o.get("username")
            setup.append(["AUTH", user, o["password"]] if user else ["AUTH", o["password"]])
        if int(o.get("db") or 0):
            setup.append(["SELECT", int(o["db"])])
        try:
            for done in self._send(proto, setup):
                await done
        except BaseException:
            assert proto.transport is not None
            proto.transport.abort()
            raise
        return proto

    async def _connection(self) -> _Protocol:
        proto = self._usable()
        if proto is not None:
            return proto
        loop = asyncio.get_running_loop()
        if self._connecting is None or self._connecting.get_loop() is not loop:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            proto = await asyncio.shield(connecting)  # one caller's timeout keeps it going
        except OSError as exc:
            raise redis.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None
        self._proto, self._loop = proto, loop
        return proto

    @staticmethod
    def _send(proto: _Protocol, commands: Sequence[Sequence[Arg]]) -> list[asyncio.Future[Any]]:
        if proto.lost is not None:
            raise proto.lost
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiting.extend(futures)
        assert proto.transport is not None
        proto.transport.write(b"".join(_encode(c) for c in commands))
        return futures

    async def send(self, *commands: Sequence[Arg]) -> list[asyncio.Future[Any]]:
        """Write ``commands`` at once; one future per reply (a ``redis.ResponseError``
        for an error reply, ``redis.ConnectionError`` when the connection is lost)."""
        return self._send(await self._connection(), commands)

    async def execute(self, *args: Arg) -> Any:
        """One command and its reply."""
        (done,) = await self.send(args)
        return await done

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
