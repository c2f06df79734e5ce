"""Refuse a request when its headers arrive: a wrong token or a declared body over the limit.

Every request passes through :class:`RequestGuard` first (``GuardedApplication`` in
:mod:`server.http.app` puts it in front of the fast call path and tornado's routing). For
a request that carries a body it checks, before a byte of that body is read:

- the bearer token (unless the route is public, or the request is a CORS preflight):
  401 ``Unauthorized``;
- the declared ``Content-Length`` against ``GF_MAX_BODY``: 413 ``RequestTooLarge``.

Such a request is answered at once with the same JSON error body as every other error,
``Connection: close``, and the connection is taken from tornado (``detach``): the answer
is written, the sending side shut, and whatever the client still sends is read into a
small buffer and dropped for at most :data:`LINGER_SECONDS` (so the client sees the answer
instead of a reset), then the socket is closed. A chunked body is counted as it arrives;
past the limit it gets the 413 at once and the connection closes after the answer.
So an unauthenticated client cannot make the server hold its body, whatever its size.

Requests without a body go through untouched; their handlers check the token as before.
It does not parse bodies, time uploads out (the ``HTTPServer``'s ``body_timeout`` and
``idle_connection_timeout`` do, see :mod:`server.serve`) or know about routes beyond what
each :class:`Route` says: its pattern, whether it is public, and the shape of its errors
(the AIGES ase routes answer in the ase shape).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate
from typing import NamedTuple

from tornado import httputil
from tornado.iostream import IOStream, StreamClosedError

from globalfunc.errors import GlobalFuncError, RequestTooLarge, Unauthorized
from server.http.state import WWW_AUTHENTICATE, AppState, log_access

__all__ = ["LINGER_SECONDS", "RequestGuard", "Route"]

log = logging.getLogger(__name__)

LINGER_SECONDS = 5.0
"""How long a refused connection's remaining upload is read and dropped before closing."""

_LINGERING: set[asyncio.Task[None]] = set()


class Route(NamedTuple):
    """One route as the guard sees it."""

    pattern: re.Pattern[str]
    public: bool
    error_body: Callable[[GlobalFuncError, AppState], bytes]


def route_label(path: str) -> str:
    """The metrics route of a path refused before routing (the two call endpoints by name)."""
    if path in ("/gfgo/", "/gfgo"):
        return "/gfgo/"
    if path.startswith("/call/"):
        return "/call/<name>"
    return "<refused>"


class RequestGuard(httputil.HTTPMessageDelegate):
    """Checks a request's headers before handing it to ``inner`` (see the module doc)."""

    __slots__ = ("conn", "inner", "method", "path", "refused", "routes", "size", "start", "state")

    def __init__(
        self,
        state: AppState,
        conn: httputil.HTTPConnection,
        inner: httputil.HTTPMessageDelegate,
        routes: Sequence[Route],
    ) -> None:
        self.state = state
        self.conn = conn
        self.inner = inner
        self.routes = routes
        self.refused = False
        self.size = 0
        self.method = "?"
        self.path = "?"
        self.start = time.time()

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if isinstance(start_line, httputil.RequestStartLine):
            self.method = start_line.method
            self.path = start_line.path.split("?", 1)[0]
            error = self._check(start_line.method, headers)
            if error is not None:
                self._refuse(error, headers.get("Origin"))
                return None
        return self.inner.headers_received(start_line, headers)

    def _check(self, method: str, headers: httputil.HTTPHeaders) -> GlobalFuncError | None:
        state = self.state
        declared = headers.get("Content-Length")
        chunked = "Transfer-Encoding" in headers
        if (declared is None or declared.strip() in ("", "0")) and not chunked:
            return None  # no body: nothing to hold; the handler decides
        if state.token is not None and method != "OPTIONS" and not self._public():
            try:
                state.check_token(headers.get("Authorization"))
            except Unauthorized as err:
                return err
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return None  # malformed: tornado answers 400 before reading anything
            if size > state.max_body:
                return _too_large(size, state.max_body)
        return None

    def _public(self) -> bool:
        route = self._route()
        return route is not None and route.public

    def _route(self) -> Route | None:
        return next((r for r in self.routes if r.pattern.fullmatch(self.path)), None)

    def _payload(self, err: GlobalFuncError) -> bytes:
        route = self._route()
        if route is not None:
            try:
                return route.error_body(err, self.state)
            except (TypeError, ValueError) as exc:  # orjson's refusals are TypeErrors
                log.warning(
                    "%s: the route's error body failed (%r); the plain one instead",
                    self.path[:200],
                    exc,
                )
        return self.state.error_payload(err)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None
        self.size += len(chunk)
        if self.size > self.state.max_body:  # only a chunked body gets here
            self.refused = True
            self._answer_in_band(_too_large(self.size, self.state.max_body))
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()

    # -- answering ---------------------------------------------------------------------------
    def _headers(self, err: GlobalFuncError, payload: bytes, origin: str | None) -> list[str]:
        lines = [
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            f"Date: {formatdate(usegmt=True)}",
        ]
        if isinstance(err, Unauthorized):
            lines.append(f"WWW-Authenticate: {WWW_AUTHENTICATE}")
        allowed = self.state.cors_origin(origin)
        if allowed is not None:
            lines += [f"Access-Control-Allow-Origin: {allowed}", "Vary: Origin"]
        return lines

    def _account(self, err: GlobalFuncError) -> None:
        state = self.state
        status = err.http_status
        state.metrics.observe_request(route_label(self.path), self.method, status)
        context = getattr(self.conn, "context", None)
        log_access(
            self.method,
            self.path,
            None,
            status,
            time.time() - self.start,
            getattr(context, "remote_ip", None),
        )

    def _refuse(self, err: GlobalFuncError, origin: str | None) -> None:
        """Answer now, take the connection from tornado, drop the upload, close."""
        self.refused = True
        self._account(err)
        payload = self._payload(err)
        status = err.http_status
        head = [f"HTTP/1.1 {status} {httputil.responses.get(status, 'Error')}"]
        head += self._headers(err, payload, origin)
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        detach = getattr(self.conn, "detach", None)
        if detach is None:  # not an HTTP/1 connection: answer in band instead
            self._answer_in_band(err, origin)
            return
        stream: IOStream = detach()
        task = asyncio.ensure_future(_write_and_linger(stream, data))
        _LINGERING.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(_LINGERING.discard)

    def _answer_in_band(self, err: GlobalFuncError, origin: str | None = None) -> None:
        """Answer through tornado; it closes the connection after, the body unread."""
        self._account(err)
        payload = self._payload(err)
        headers = httputil.HTTPHeaders()
        for line in self._headers(err, payload, origin):
            name, _, value = line.partition(": ")
            headers[name] = value
        status = err.http_status
        try:
            sent = self.conn.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses[status]),
                headers,
                payload,
            )
            sent.add_done_callback(_consume)
            self.conn.finish()
        except StreamClosedError:
            pass
        # tornado closes the connection after the answer and then tells inner, through
        # on_connection_close, that the request is over: inner never sees finish().


def _too_large(size: int, limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"request body is {size} bytes; this server accepts at most {limit} (GF_MAX_BODY)",
        size=size,
        limit=limit,
    )


async def _write_and_linger(stream: IOStream, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    try:
        await stream.write(data)
        # FIN after the answer; keep reading (and dropping) what the client still sends so
        # that closing does not reset the connection before the client read the answer.
        stream.socket.shutdown(socket.SHUT_WR)
        deadline = loop.time() + LINGER_SECONDS
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.wait_for(stream.read_bytes(65536, partial=True), left)
    except (StreamClosedError, TimeoutError, OSError):
        pass
    finally:
        stream.close()


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()  # a client that hung up is not an error worth a warning
