"""The two call endpoints, ``POST /gfgo/`` and ``POST /call/<name>``, on tornado's HTTP layer.

These are the hot paths, so they skip ``tornado.web.RequestHandler`` (its per-request
object, header defaults, coroutine plumbing and logging) and answer straight from an
``HTTPMessageDelegate``. :class:`GlobalFuncApplication` picks this delegate for POSTs to
those paths and hands every other request to the ordinary tornado routing. The rules are
the ones every endpoint follows (``server.http.state``): token, body limit, CORS, JSON
errors, metrics, one access-log line.

Request flow: body -> orjson (+ tags) -> pydantic model -> name validated, allow-list,
registered? -> executor (inline: bytes at once; isolated: awaited) -> JSON bytes out.

An ``Idempotency-Key`` header becomes a :class:`~globalfunc.idempotency.entry.CallKey`:
scoped by the caller's credential (a hash of its bearer token), with the call's
fingerprint (function name, canonical arguments), and marked as made up by the client
(``X-GF-Key-Origin: client``: kept 60 s at most). Only a worker's call guard uses it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import select
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

import tornado.web
from pydantic import BaseModel, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError
from tornado import httputil
from tornado.iostream import StreamClosedError

from globalfunc import jsoncodec
from globalfunc.errors import (
    GlobalFuncError,
    InvalidRequest,
    Overloaded,
    RequestTooLarge,
    Unauthorized,
)
from globalfunc.idempotency.entry import ANONYMOUS, CallKey, check_key, fingerprint, scope_of
from server.http.state import WWW_AUTHENTICATE, AppState, log_access

__all__ = ["GfgoRequest", "GlobalFuncApplication", "run_call", "run_gfgo"]

app_log = logging.getLogger(__name__)

_PENDING: set[asyncio.Future[None]] = set()
_INTERNAL = b'{"error":"InternalError","message":"internal server error (see server log)"}'


class GfgoRequest(BaseModel):  # type: ignore[no-redef]  # plugin: alias "kwargs" vs **kwargs
    """Body of ``POST /gfgo/``; unknown fields are ignored, as the seed's server did."""

    model_config = ConfigDict(extra="ignore")

    pack_func: StrictStr
    call_args: list[Any] = Field(default_factory=list, alias="args")
    call_kwargs: dict[str, Any] = Field(default_factory=dict, alias="kwargs")


_KWARGS = TypeAdapter(dict[str, Any])
_KEY = re.compile(r"[!-~]{1,200}")  # the Idempotency-Key header, as /openapi.json declares it
#: the header a client sets on a key it made up itself (kept only for its own resends)
KEY_ORIGIN = "X-GF-Key-Origin"


def _call_key(
    key: str | None,
    scope: str,
    client_made: bool,
    function: str,
    args: Any,
    kwargs: Any,
    raw: bytes,
) -> CallKey | None:
    if key is None:
        return None
    fp = fingerprint(function, args, kwargs, raw)
    return CallKey(key, scope=scope, fp=fp, client_made=client_made)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(x) for x in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _parse(raw: bytes, max_depth: int) -> Any:
    if not raw or not raw.strip():
        raise InvalidRequest("body is empty; expected a JSON object")
    # Type tags stay as they are: the invoke path decodes them where the function runs.
    return jsoncodec.loads(raw, max_depth=max_depth, decode_tags=False)


def run_gfgo(
    state: AppState,
    raw: bytes,
    tagged: bool,
    key: str | None = None,
    *,
    scope: str = ANONYMOUS,
    client_made: bool = False,
    gone: Callable[[], bool] | None = None,
) -> tuple[str, bytes | Awaitable[bytes]]:
    """``POST /gfgo/``: the function name and its result (JSON bytes, or pending)."""
    body = _parse(raw, state.max_json_depth)
    if type(body) is not dict:
        raise InvalidRequest(
            'body must be a JSON object like {"pack_func": "Base.f", "kwargs": {}}, '
            f"got {type(body).__name__}"
        )
    try:
        req = GfgoRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(f"bad /gfgo/ body: {_validation_message(exc)}") from None
    out = state.invoker.submit(
        req.pack_func,
        req.call_args,
        req.call_kwargs,
        encoded=True,
        tagged=tagged,
        idempotency_key=_call_key(
            key, scope, client_made, req.pack_func, req.call_args, req.call_kwargs, raw
        ),
        client_gone=gone,
    )
    return req.pack_func, out


def run_call(
    state: AppState,
    name: str,
    raw: bytes,
    key: str | None = None,
    *,
    scope: str = ANONYMOUS,
    client_made: bool = False,
    gone: Callable[[], bool] | None = None,
) -> bytes | Awaitable[bytes]:
    """``POST /call/<name>``: the function's result as JSON bytes (or pending)."""
    record = state.invoker.lookup(name)
    body = _parse(raw, state.max_json_depth) if raw.strip() else {}
    try:
        kwargs = _KWARGS.validate_python(body)
    except ValidationError:
        raise InvalidRequest(
            f"body of /call/{name} must be a JSON object of keyword arguments, "
            f"got {type(body).__name__}"
        ) from None
    call_key = _call_key(key, scope, client_made, name, (), kwargs, raw)
    return state.invoker.submit(
        name, (), kwargs, encoded=True, record=record, idempotency_key=call_key, client_gone=gone
    )


_HANGUP = select.POLLRDHUP | select.POLLHUP | select.POLLERR  # the peer closed or reset

_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class _FastCall(httputil.HTTPMessageDelegate):
    """One call request, answered without a RequestHandler."""

    __slots__ = (
        "chunks",
        "closed",
        "conn",
        "function",
        "headers",
        "name",
        "path",
        "size",
        "start",
        "state",
    )

    def __init__(
        self,
        state: AppState,
        conn: httputil.HTTPConnection,
        path: str,
        name: str | None,
        headers: httputil.HTTPHeaders,
    ) -> None:
        self.state = state
        self.conn = conn
        self.path = path
        self.name = name
        self.headers = headers
        self.chunks: list[bytes] = []
        self.size = 0
        self.closed = False
        self.function: str | None = None
        self.start = time.time()

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= self.state.max_body:
            self.chunks.append(chunk)

    def on_connection_close(self) -> None:
        self.closed = True

    def _gone(self) -> bool:
        """Whether the caller has left (a duplicate waiting on its key stops then).

        Asked of the socket itself, only when a waiter wants to know: tornado tells a
        delegate of a close only while it reads, and its close callback misses a peer that
        closed with bytes still unread (a CRLF after the body, a pipelined request)."""
        if self.closed:
            return True
        stream = getattr(self.conn, "stream", None)
        if stream is None or stream.closed():
            return True
        try:
            poller = select.poll()
            poller.register(stream.fileno(), _HANGUP)
            return bool(poller.poll(0))
        except (OSError, ValueError):  # the socket is gone already
            return True

    def finish(self) -> None:
        state = self.state
        try:
            state.check_token(self.headers.get("Authorization"))
            if self.size > state.max_body:
                raise RequestTooLarge(
                    f"request body is {self.size} bytes; this server accepts at most "
                    f"{state.max_body} (GF_MAX_BODY)",
                    size=self.size,
                    limit=state.max_body,
                )
            raw = b"".join(self.chunks)
            key = self.headers.get("Idempotency-Key")  # a worker runs each key once
            scope, client_made = ANONYMOUS, False
            if key is not None:
                if not _KEY.fullmatch(key):
                    check_key(key)  # its one-line BadIdempotencyKey
                scope = scope_of(self.headers.get("Authorization"))
                client_made = self.headers.get(KEY_ORIGIN) == "client"
            if self.name is None:
                tagged = self.headers.get("X-GF-Codec") == "tagged"
                self.function, out = run_gfgo(
                    state, raw, tagged, key, scope=scope, client_made=client_made, gone=self._gone
                )
                head = tail = b""
            else:
                self.function = self.name  # counted under its name even when refused
                out = run_call(
                    state,
                    self.name,
                    raw,
                    key,
                    scope=scope,
                    client_made=client_made,
                    gone=self._gone,
                )
                head, tail = b'{"result":', b"}"
        except GlobalFuncError as err:
            self._fail(err)
            return
        except Exception:
            app_log.exception("unexpected error in POST %s", self.path)
            self._respond(500, _INTERNAL, "InternalError")
            return
        if isinstance(out, bytes):
            self._respond(200, head + out + tail if head else out, None)
        elif isinstance(out, asyncio.Future):  # the isolated pool: a callback, no task
            out.add_done_callback(lambda fut: self._settle(fut, head, tail))
        else:
            task = asyncio.ensure_future(self._later(out, head, tail))
            _PENDING.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(_PENDING.discard)

    async def _later(self, pending: Awaitable[bytes], head: bytes, tail: bytes) -> None:
        try:
            out = await pending
        except GlobalFuncError as err:
            self._fail(err)
            return
        except Exception:
            app_log.exception("unexpected error in POST %s", self.path)
            self._respond(500, _INTERNAL, "InternalError")
            return
        self._respond(200, head + out + tail if head else out, None)

    def _settle(self, fut: asyncio.Future[bytes], head: bytes, tail: bytes) -> None:
        if fut.cancelled():
            self._respond(500, _INTERNAL, "InternalError")
            return
        exc = fut.exception()
        if exc is None:
            out = fut.result()
            self._respond(200, head + out + tail if head else out, None)
        elif isinstance(exc, GlobalFuncError):
            self._fail(exc)
        else:
            app_log.error("unexpected error in POST %s", self.path, exc_info=exc)
            self._respond(500, _INTERNAL, "InternalError")

    def _fail(self, err: GlobalFuncError) -> None:
        self._respond(
            err.http_status,
            self.state.error_payload(err),
            type(err).__name__,
            www_auth=isinstance(err, Unauthorized),
            retry_after=err.details.get("retry_after") if isinstance(err, Overloaded) else None,
        )

    def _respond(
        self,
        status: int,
        payload: bytes,
        error: str | None,
        www_auth: bool = False,
        retry_after: int | None = None,
    ) -> None:
        state = self.state
        seconds = time.time() - self.start
        route = "/gfgo/" if self.name is None else "/call/<name>"
        state.metrics.observe_call(self.function or "", status, seconds, error)
        state.metrics.observe_request(route, "POST", status)
        context = getattr(self.conn, "context", None)
        log_access(
            "POST", self.path, self.function, status, seconds, getattr(context, "remote_ip", None)
        )
        if self.closed:
            return
        headers = httputil.HTTPHeaders()
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(payload))
        headers["Date"] = _http_date()
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if www_auth:
            headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        origin = state.cors_origin(self.headers.get("Origin"))
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"
        reason = httputil.responses.get(status, "Unknown")
        try:
            sent = self.conn.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", status, reason), headers, payload
            )
            sent.add_done_callback(_consume)
            self.conn.finish()
        except StreamClosedError:
            self.closed = True


def _consume(fut: Any) -> None:
    if not fut.cancelled():
        fut.exception()  # a client that hung up is not an error worth a warning


class _Switch(httputil.HTTPMessageDelegate):
    """Picks the fast call path or tornado's routing once the request line is known."""

    __slots__ = ("app", "conn", "inner", "server_conn")

    def __init__(
        self, app: GlobalFuncApplication, server_conn: object, conn: httputil.HTTPConnection
    ) -> None:
        self.app = app
        self.server_conn = server_conn
        self.conn = conn
        self.inner: httputil.HTTPMessageDelegate | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if isinstance(start_line, httputil.RequestStartLine) and start_line.method == "POST":
            path = start_line.path.split("?", 1)[0]
            if path in ("/gfgo/", "/gfgo"):
                self.inner = _FastCall(self.app.gf_state, self.conn, path, None, headers)
                return None
            if path.startswith("/call/") and len(path) <= 1000:
                try:
                    name = urllib.parse.unquote(path[6:], errors="strict")
                except UnicodeDecodeError:
                    name = "\ufffd"  # not UTF-8: parse_call_name rejects it
                self.inner = _FastCall(self.app.gf_state, self.conn, path, name, headers)
                return None
        self.inner = tornado.web.Application.start_request(self.app, self.server_conn, self.conn)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        assert self.inner is not None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        assert self.inner is not None
        self.inner.finish()

    def on_connection_close(self) -> None:
        if self.inner is not None:
            self.inner.on_connection_close()


class GlobalFuncApplication(tornado.web.Application):
    """tornado's Application, with the two call endpoints answered on the fast path."""

    gf_state: AppState

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _Switch(self, server_conn, request_conn)
