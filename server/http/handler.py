"""The base of every tornado handler GlobalFunc serves: one set of rules for all endpoints.

:class:`BaseHandler` gets the shared :class:`~server.http.state.AppState` through
``initialize`` and applies the token check, the body limit, CORS, JSON error bodies, the
``Allow`` header on 405, and the access log's fields, so each endpoint only says what it
answers. What it does not do: route (:mod:`server.http.app`) or answer the fast call
paths, which share these rules through :mod:`server.http.state`
(:mod:`server.http.calls`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
import tornado.web

from globalfunc import jsoncodec
from globalfunc.errors import GlobalFuncError, InvalidRequest, RequestTooLarge, Unauthorized
from server.http.state import WWW_AUTHENTICATE, AppState

__all__ = ["BaseHandler"]

_JSON = "application/json"


class BaseHandler(tornado.web.RequestHandler):
    """Auth, body limit, CORS, JSON errors and metrics shared by every endpoint."""

    route: ClassVar[str] = "?"
    public: ClassVar[bool] = False
    fast_methods: ClassVar[tuple[str, ...]] = ()
    """Methods answered before routing (:mod:`server.http.calls`), for ``Allow``."""
    state: AppState
    gf_function: str | None
    gf_error: str | None

    def initialize(self, state: AppState) -> None:
        self.state = state
        self.gf_function = None
        self.gf_error = None
        if state.cors_origins:
            self._cors(state.cors_origins)

    def set_default_headers(self) -> None:
        # Runs from __init__ (before initialize) and again after every clear().
        self._headers["Content-Type"] = _JSON
        state: AppState | None = getattr(self, "state", None)
        if state is not None and state.cors_origins:
            self._cors(state.cors_origins)

    def _cors(self, origins: frozenset[str]) -> None:
        origin = self.state.cors_origin(self.request.headers.get("Origin"))
        if origin is not None:
            self._headers["Access-Control-Allow-Origin"] = origin
            self._headers["Vary"] = "Origin"

    def prepare(self) -> None:
        state = self.state
        if not self.public and self.request.method != "OPTIONS":
            try:
                state.check_token(self.request.headers.get("Authorization"))
            except Unauthorized as err:
                raise _Abort(err) from None
        body = self.request.body
        if body is not None and len(body) > state.max_body:
            raise _Abort(
                RequestTooLarge(
                    f"request body is {len(body)} bytes; this server accepts at most "
                    f"{state.max_body} (GF_MAX_BODY)",
                    size=len(body),
                    limit=state.max_body,
                )
            )

    @classmethod
    def refusal_payload(cls, err: GlobalFuncError, state: AppState) -> bytes:
        """The error body when this route's request is refused at its headers
        (:mod:`server.http.guard`): the shape ``send_error_obj`` gives. A route with its own
        error shape overrides both."""
        return state.error_payload(err)

    def options(self, *args: Any, **kwargs: Any) -> None:
        if not self.state.cors_origins:
            raise tornado.web.HTTPError(405)
        self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.set_header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type, X-GF-Codec, Idempotency-Key, X-GF-Key-Origin",
        )
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    # -- output -------------------------------------------------------------------------------
    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))

    def send_error_obj(self, err: GlobalFuncError) -> None:
        self.gf_error = type(err).__name__
        if self._finished:
            return
        self.clear()
        if isinstance(err, Unauthorized):
            self.set_header("WWW-Authenticate", WWW_AUTHENTICATE)
        self.set_status(err.http_status)
        self.finish(self.state.error_payload(err))

    def json_body(self, *, empty: Any = None) -> Any:
        raw = self.request.body
        if not raw or not raw.strip():
            if empty is not None:
                return empty
            raise InvalidRequest("body is empty; expected a JSON object")
        return jsoncodec.loads(raw, max_depth=self.state.max_json_depth)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, _Abort):
            self.send_error_obj(e.error)
            return
        if isinstance(e, GlobalFuncError):
            self.send_error_obj(e)
            return
        super()._handle_request_exception(e)

    def allowed_methods(self) -> list[str]:
        """The methods this route answers (RFC 9110: a 405 lists them in ``Allow``)."""
        base = tornado.web.RequestHandler
        found = [
            m
            for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            if getattr(type(self), m.lower(), None) is not getattr(base, m.lower(), None)
        ]
        found += [m for m in self.fast_methods if m not in found]
        if self.state.cors_origins:
            found.append("OPTIONS")
        return found

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self._headers["Content-Type"] = _JSON
        if status_code == 405:
            self._headers["Allow"] = ", ".join(self.allowed_methods())
        if status_code >= 500:
            body = {"error": "InternalError", "message": "internal server error (see server log)"}
            self.gf_error = "InternalError"
            exc_info = kwargs.get("exc_info")
            if self.state.debug and exc_info:
                import traceback

                body["traceback"] = "".join(traceback.format_exception(*exc_info))
        else:
            body = {"error": "HTTPError", "message": self._reason}
        self.finish(orjson.dumps(body))


class _Abort(Exception):
    """Raised from ``prepare`` to answer with a GlobalFunc error before the handler runs."""

    def __init__(self, error: GlobalFuncError) -> None:
        super().__init__(error.message)
        self.error = error
