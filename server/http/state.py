"""What every HTTP endpoint shares: the app state, token check, CORS, error bodies, access log.

Kept apart from the handlers so the fast call path (``server.http.calls``) and the
tornado handlers (``server.http.app``) apply exactly the same rules.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from globalfunc.catalog import Catalog
from globalfunc.errors import GlobalFuncError, Unauthorized
from globalfunc.executor import Executor
from globalfunc.invoke import Invoker
from globalfunc.jsoncodec import DEFAULT_MAX_DEPTH
from server.http.metrics import Metrics

access_log = logging.getLogger("globalfunc.access")

DEFAULT_MAX_BODY = 10 * 1024 * 1024
WWW_AUTHENTICATE = 'Bearer realm="globalfunc"'


def hard_body_limit(max_body: int) -> int:
    """The ``max_body_size`` handed to tornado: above ``max_body``, so that our JSON 413
    (:mod:`server.http.guard`, at the headers or as a chunked body passes the limit)
    always answers first and tornado's bare 400 never does."""
    return max_body * 2 + 1024 * 1024


@dataclass(slots=True)
class AppState:
    """Everything handlers share; built once by :func:`server.http.app.make_app`."""

    catalog: Catalog
    executor: Executor
    invoker: Invoker
    metrics: Metrics
    token: bytes | None
    max_body: int
    cors_origins: frozenset[str]
    debug: bool
    info: dict[str, Any]
    started: float = field(default_factory=time.time)
    max_json_depth: int = DEFAULT_MAX_DEPTH
    openapi_cache: tuple[tuple[tuple[str, str], ...], bytes] | None = None
    #: ``Bearer <GF_WRITE_TOKEN>``: saves need it, and it may do whatever ``token`` may
    write_token: bytes | None = None

    def check_token(self, authorization: str | None) -> None:
        """Raise :class:`Unauthorized` unless the header carries the bearer token (or the
        write token, which may do everything the token may)."""
        if self.token is None:
            return
        given = (authorization or "").encode("utf-8", "replace")
        ok = hmac.compare_digest(given, self.token)
        if self.write_token is not None:
            ok = hmac.compare_digest(given, self.write_token) or ok
        if not ok:
            raise Unauthorized(
                "missing or wrong bearer token; send 'Authorization: Bearer <token>' "
                "(the server's GF_TOKEN or GF_TOKEN_FILE)"
            )

    def cors_origin(self, origin: str | None) -> str | None:
        """The origin to echo in ``Access-Control-Allow-Origin``, if it is allowed."""
        origins = self.cors_origins
        if origins and origin is not None and (origin in origins or "*" in origins):
            return origin
        return None

    def error_payload(self, err: GlobalFuncError) -> bytes:
        """The JSON body of an error; tracebacks only when the server runs with debug."""
        body = err.to_dict()
        if not self.debug and "details" in body:
            details = {k: v for k, v in body["details"].items() if k != "traceback"}
            if details:
                body["details"] = details
            else:
                del body["details"]
        try:
            return orjson.dumps(body, default=str)
        except orjson.JSONEncodeError:  # an int past 64 bits (a 23-digit Content-Length), ...
            return _fallback_payload(body)


def _fallback_payload(body: dict[str, Any]) -> bytes:
    """The error body written by the standard library, which writes integers of any size;
    if even that fails (a NaN in the details), the error's name and message alone."""
    try:
        text = json.dumps(body, default=str, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = json.dumps({"error": body.get("error"), "message": body.get("message")})
    return text.encode("utf-8", "replace")


def log_access(
    method: str, path: str, function: str | None, status: int, seconds: float, client: str | None
) -> None:
    """One line on ``globalfunc.access``: method, path, function, status, duration, client."""
    if access_log.isEnabledFor(logging.INFO):
        # makeRecord + handle: the record logger.info would make, minus the caller look-up
        # (findCaller), which is about a third of logging's cost per request.
        access_log.handle(
            access_log.makeRecord(
                access_log.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %s %d %.2fms %s",
                (method, path, function or "-", status, 1000.0 * seconds, client),
                None,
            )
        )
