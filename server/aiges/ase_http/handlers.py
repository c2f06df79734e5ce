"""The tornado handlers of the ase routes, and :func:`ase_routes` to mount them.

A handler reads the body (parsed by :func:`globalfunc.jsoncodec.loads` with the server's
nesting limit, ``GF_MAX_JSON_DEPTH``: deeper is a 400 ``NestingTooDeep`` in the ase error
shape, as on every other route), finds the service (an in-process engine first, then a
registered function of the serving catalog), runs it, and answers in the ase shapes of
:mod:`.protocol`. The handlers subclass :class:`server.http.app.BaseHandler`, so token,
body limit, CORS, metrics and the access log are the server's; only the error body takes
the ase shape. Running a registry function is :func:`.services.call_registry_function`'s
job, not the handler's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import (
    Forbidden,
    GlobalFuncError,
    InvalidName,
    InvalidRequest,
    NestingTooDeep,
    NotFound,
)
from globalfunc.record import FunctionRecord
from server.aiges.ase_http.protocol import (
    INTERNAL_ERROR,
    LEGACY_ROUTE,
    ROUTE,
    AseError,
    parse_body,
    render_outcome,
    undeclared,
)
from server.aiges.ase_http.services import AseServices, call_registry_function
from server.aiges.engine import Engine, Frame
from server.http.handler import BaseHandler
from server.http.state import WWW_AUTHENTICATE, AppState

__all__ = ["AseHandler", "AseV1Handler", "PingHandler", "ase_routes"]

log = logging.getLogger(__name__)


class AseHandler(BaseHandler):
    """``POST /<version>/private/<svc>``: one ase request, answered in the ase shapes."""

    route: ClassVar[str] = ROUTE
    services: AseServices
    sid: str

    def initialize(  # type: ignore[override]  # adds ``services``; ``state`` from make_app
        self, services: AseServices, state: AppState | None = None
    ) -> None:
        self.services = services
        self.sid = uuid.uuid4().hex
        super().initialize(state if state is not None else services.standalone_state())

    def _reply(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(orjson.dumps(body))

    def _fail(self, err: AseError) -> None:
        self.gf_error = err.kind
        if self._finished:
            return
        self.clear()
        if err.http_status == 401:
            self.set_header("WWW-Authenticate", WWW_AUTHENTICATE)
        self._reply(err.http_status, err.body(self.sid))

    def send_error_obj(self, err: GlobalFuncError) -> None:
        # Errors raised before ``post`` (token, body limit) get the ase shape too.
        self._fail(AseError.of(err))

    @classmethod
    def refusal_payload(cls, err: GlobalFuncError, state: AppState) -> bytes:
        # Refused at the headers (server.http.guard): the ase shape as well.
        return orjson.dumps(AseError.of(err).body(uuid.uuid4().hex))

    async def post(self, *parts: str) -> None:
        svc = parts[-1]
        start = time.monotonic()
        try:
            body = await self._answer(svc)
        except AseError as err:
            log.info("ase %s failed: %s %s", svc[:200], err.code, err.message)
            self._fail(err)
        except GlobalFuncError as err:
            log.info("ase %s failed: %s", svc[:200], err.message)
            self._fail(AseError.of(err))
        except Exception:
            log.exception("unexpected error in ase %s", svc[:200])
            self._fail(
                AseError(
                    INTERNAL_ERROR, "internal server error (see server log)", kind="InternalError"
                )
            )
        else:
            self._reply(200, body)
        if self.gf_function is not None:
            self.state.metrics.observe_call(
                self.gf_function, self.get_status(), time.monotonic() - start, self.gf_error
            )

    def _request(self, svc: str) -> tuple[dict[str, str], dict[str, dict[str, Any]], list[Frame]]:
        try:
            body = jsoncodec.loads(
                self.request.body or b"null",
                max_depth=self.state.max_json_depth,
                decode_tags=False,
            )
        except NestingTooDeep as err:
            # Refused before any service sees it, like an oversized body: a 4xx, not the
            # 500 the loader answers for a failed call.
            raise AseError(err.aiges_code, err.message, err.http_status, "NestingTooDeep") from None
        except InvalidRequest as err:  # not JSON: the client's mistake, 400 (code 10106)
            raise AseError(InvalidRequest.aiges_code, err.message, 400, "InvalidRequest") from err
        return parse_body(svc, body)

    async def _answer(self, svc: str) -> dict[str, Any]:
        engine = self.services.engines.get(svc)
        if engine is not None:
            self.gf_function = svc
            params, outputs, frames = self._request(svc)
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(
                self.services.pool, engine.once, params, frames, self.sid
            )
            return render_outcome(outcome, outputs, self.sid)
        record = self._lookup(svc)
        self.gf_function = svc
        params, outputs, frames = self._request(svc)
        if "result" not in outputs:  # known before the call: do not run it for nothing
            raise undeclared("result")
        outcome = await call_registry_function(
            self.state.invoker, self.services.mapper(record), record, params, frames
        )
        return render_outcome(outcome, outputs, self.sid)

    def _lookup(self, svc: str) -> FunctionRecord:
        try:
            return self.state.catalog.lookup(svc)
        except (InvalidName, NotFound):
            wrappers = ", ".join(sorted(self.services.engines)) or "none"
            raise AseError(
                NotFound.aiges_code,
                f"no ase service {svc[:200]!r} here: not a wrapper service ({wrappers}) nor a "
                "registered function (call name like Base.inverse_time_str; see GET /functions)",
                404,
                kind="NotFound",
            ) from None
        except Forbidden as err:
            raise AseError.of(err) from None


class AseV1Handler(AseHandler):
    """``POST /v1/<svc>``, the older route (its own metrics label)."""

    route: ClassVar[str] = LEGACY_ROUTE


class PingHandler(BaseHandler):
    """``GET /ping``: ``pong``, no token needed (the loader's health check)."""

    route: ClassVar[str] = "/ping"
    public: ClassVar[bool] = True

    def initialize(  # type: ignore[override]  # ``state`` from make_app, else standalone
        self, services: AseServices, state: AppState | None = None
    ) -> None:
        super().initialize(state if state is not None else services.standalone_state())

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("pong")


def ase_routes(
    services: AseServices | Mapping[str, Engine], *, workers: int = 4
) -> list[tuple[str, type[BaseHandler], dict[str, Any]]]:
    """Tornado rules serving ``services`` (or a mapping service id -> initialised engine).

    Given to :func:`server.http.app.make_app` as ``extra_routes``, the handlers get the
    server's state: its token, limits and metrics, and its registry functions. In a plain
    ``tornado.web.Application`` they use :meth:`AseServices.standalone_state`.
    """
    if not isinstance(services, AseServices):
        services = AseServices(services, workers=workers)
    kw: dict[str, Any] = {"services": services}
    # Any segment: a service id that names nothing is a 404 in the ase shape, not the
    # generic one, so every answer on these routes has the shape the document gives them.
    svc = r"([^/]+)"
    return [
        (rf"/v1/{svc}", AseV1Handler, kw),
        (rf"/([^/]+)/private/{svc}", AseHandler, kw),
        (r"/ping", PingHandler, kw),
    ]
