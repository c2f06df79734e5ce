"""The tornado application: call registered functions over HTTP, list, search and describe them.

Endpoints (all JSON unless noted)::

    GET  /                  service info            POST /          echo (the seed's IndexHandler)
    POST /gfgo/             {"pack_func", "args", "kwargs"} -> the bare result (the seed's API)
    POST /call/<name>       the kwargs as the body -> {"result": ...}
    GET  /functions         GET /functions/<name>   GET /search?q=...&limit=20
    GET  /healthz           GET /metrics (Prometheus text)
    GET  /openapi.json      GET /docs (an HTML page with no external assets)
    /registry/...           save, read, list, search, delete versions (server.http.registry_api)

Every request meets :mod:`server.http.guard` first: a request with a body and a wrong
token (401) or a declared size over the limit (413) is answered when its headers arrive,
before its body is read. The two POST call endpoints are then answered on a fast path
before tornado's routing (:mod:`server.http.calls`); everything else is an ordinary
``RequestHandler`` here.
Handlers get their dependencies through ``initialize`` (one :class:`AppState`), raise
:mod:`globalfunc.errors` classes, and this module is the edge that turns them into a
status and ``to_dict()`` body. ``extra_routes`` (the AIGES ``/v1/...`` routes) are tried
before the built-in ones. One access-log line per request goes to the
``globalfunc.access`` logger: method, path, function, status, duration, client.

What it does not do: start a server or read settings (``server.serve`` does), run user
code itself (an :class:`~globalfunc.executor.Executor` does), or keep state between
processes (metrics are shared only in prometheus-client's multiprocess mode, which
``server.serve`` turns on for ``processes > 1``).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

import orjson
import tornado.web
from tornado import httputil

from globalfunc import jsoncodec
from globalfunc.catalog import Catalog
from globalfunc.errors import (
    ConfigError,
    InvalidRequest,
    NotFound,
)
from globalfunc.executor import Executor
from globalfunc.invoke import Invoker
from globalfunc.record import FunctionRecord
from globalfunc.registry import Registry
from globalfunc.search import check_query
from server.http.calls import GlobalFuncApplication
from server.http.guard import RequestGuard, Route
from server.http.handler import BaseHandler, _Abort
from server.http.metrics import CONTENT_TYPE, Metrics
from server.http.openapi import build_openapi, kwargs_schema
from server.http.state import (
    DEFAULT_MAX_BODY,
    AppState,
    hard_body_limit,
    log_access,
)

__all__ = ["DEFAULT_MAX_BODY", "AppState", "OpenAPIExtension", "hard_body_limit", "make_app"]

VERSION = "0.1.0"
_JSON = "application/json"
_INFO_GET = "【GET】This is Website for Internal API System"
_INFO_POST = "【POST】This is Website for Internal API System"
_INTEGER = re.compile(r"-?[0-9]{1,12}")


class IndexHandler(BaseHandler):
    route = "/"

    def get(self) -> None:
        state = self.state
        self.send_json(
            {
                "info": _INFO_GET,
                "message": "Please Refer to API document",
                "docs": "/docs",
                "openapi": "/openapi.json",
                **state.info,
            }
        )

    def post(self) -> None:
        self.send_json({"info": _INFO_POST, "input_dict": self.json_body(empty={})})


class GfgoHandler(BaseHandler):
    """``/gfgo/`` for methods other than POST (405, or a CORS preflight).

    POST is answered by :mod:`server.http.calls` before tornado's routing.
    """

    route = "/gfgo/"
    fast_methods = ("POST",)


class CallHandler(BaseHandler):
    """``/call/<name>`` for methods other than POST (see :class:`GfgoHandler`)."""

    route = "/call/<name>"
    fast_methods = ("POST",)


def _describe(record: FunctionRecord, *, full: bool) -> dict[str, Any]:
    name = f"{record.package}.{record.name}"
    doc = record.docstring or ""
    data: dict[str, Any] = {
        "name": name,
        "package": record.package,
        "signature": f"{name}{record.signature}",
        "summary": doc.strip().splitlines()[0] if doc.strip() else "",
        "description": record.description,
        "sha256": record.sha256,
        "branch": record.branch,
        "saved_at": record.saved_at,
    }
    if full:
        data.update(
            docstring=record.docstring,
            params=[
                {"name": p.name, "kind": p.kind, "default": p.default, "annotation": p.annotation}
                for p in record.params
            ],
            returns=record.returns,
            md5=record.md5,
            lines=record.line_count,
            commit=record.commit,
            modified_time=record.modified_time,
            kwargs_schema=kwargs_schema(record),
        )
    return data


class FunctionsHandler(BaseHandler):
    route = "/functions"

    def get(self) -> None:
        package = self.get_query_argument("package", None)
        records = self.state.catalog.functions(package or None)
        self.send_json(
            {"count": len(records), "functions": [_describe(r, full=False) for r in records]}
        )


class FunctionHandler(BaseHandler):
    route = "/functions/<name>"

    def get(self, name: str) -> None:
        catalog = self.state.catalog
        record = catalog.lookup(name)
        data = _describe(record, full=True)
        data["versions"] = [
            {"sha256": r.sha256, "saved_at": r.saved_at, "commit": r.commit, "deleted": r.deleted}
            for r in catalog.history(name)
        ]
        self.send_json(data)


class SearchHandler(BaseHandler):
    route = "/search"

    async def get(self) -> None:
        q = self.get_query_argument("q", "")
        if not q.strip():
            raise InvalidRequest("search needs a query: GET /search?q=time")
        check_query(q)
        raw_limit = self.get_query_argument("limit", "20")
        if not _INTEGER.fullmatch(raw_limit):  # int() would take " 5", "1_0" and "٥"
            raise InvalidRequest(f"limit {raw_limit!r:.40} is not an integer; try limit=20")
        limit = int(raw_limit)
        if not 1 <= limit <= 200:
            raise InvalidRequest(f"limit must be between 1 and 200, got {limit}")
        package = self.get_query_argument("package", None) or None
        branch = self.get_query_argument("branch", None) or None
        catalog = self.state.catalog

        def ranked() -> list[FunctionRecord]:
            if package is None and branch is None:
                return catalog.search(q, limit)
            # the served branch unless another is asked for; exposed packages only
            found = catalog.registry.search(
                q, limit * 4, package=package, branch=branch or catalog.registry.branch
            )
            return [r for r in found if catalog.allowed(r.package)][:limit]

        # Ranking reads and scores every candidate: a thread, so /healthz keeps answering.
        hits = await asyncio.get_running_loop().run_in_executor(None, ranked)
        self.send_json(
            {"query": q, "count": len(hits), "functions": [_describe(r, full=False) for r in hits]}
        )


class HealthHandler(BaseHandler):
    route = "/healthz"
    public = True

    def get(self) -> None:
        state = self.state
        self.send_json(
            {
                "status": "ok",
                "mode": state.executor.mode,
                "uptime_s": round(time.time() - state.started, 3),
                **state.executor.stats(),
            }
        )


class MetricsHandler(BaseHandler):
    route = "/metrics"

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.state.metrics.render(self.state.executor.stats))


OpenAPIExtension = Callable[[Sequence[FunctionRecord]], Mapping[str, Any]]
"""Adds to the OpenAPI document: ``(exposed records) -> {"paths": ..., "components": ...}``.

The result may depend only on the records (the document is cached per record set)."""


class OpenAPIHandler(BaseHandler):
    route = "/openapi.json"
    extensions: tuple[OpenAPIExtension, ...]

    def initialize(self, state: AppState, extensions: Sequence[OpenAPIExtension] = ()) -> None:
        super().initialize(state)
        self.extensions = tuple(extensions)

    def get(self) -> None:
        state = self.state
        records = state.catalog.functions()
        key = tuple((f"{r.package}.{r.name}", r.sha256) for r in records)
        cached = state.openapi_cache
        if cached is None or cached[0] != key:
            doc = build_openapi(
                records,
                version=VERSION,
                secured=state.token is not None,
                extensions=[extend(records) for extend in self.extensions],
            )
            cached = state.openapi_cache = (key, orjson.dumps(doc))
        self.finish(cached[1])


class DocsHandler(BaseHandler):
    route = "/docs"
    public = True
    _page: ClassVar[bytes | None] = None

    def get(self) -> None:
        page = DocsHandler._page
        if page is None:
            page = DocsHandler._page = (
                resources.files("server.http").joinpath("static/docs.html").read_bytes()
            )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)


class NotFoundHandler(BaseHandler):
    route = "<unknown>"

    def prepare(self) -> None:
        super().prepare()
        raise _Abort(
            NotFound(
                f"no endpoint {self.request.method} {self.request.path[:200]}; see /docs",
                path=self.request.path[:200],
            )
        )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    request = handler.request
    state: AppState | None = getattr(handler, "state", None)
    if state is not None:
        state.metrics.observe_request(getattr(handler, "route", "?"), request.method or "?", status)
    log_access(
        request.method or "?",
        request.path,
        getattr(handler, "gf_function", None),
        status,
        request.request_time(),
        request.remote_ip,
    )


def _with_state(rule: tuple[Any, ...], state: AppState) -> tuple[Any, ...]:
    """A rule whose handler is a :class:`BaseHandler` gets ``state`` unless it brings its own."""
    if len(rule) >= 2 and isinstance(rule[1], type) and issubclass(rule[1], BaseHandler):
        kwargs = dict(rule[2]) if len(rule) > 2 and rule[2] else {}
        kwargs.setdefault("state", state)
        return (rule[0], rule[1], kwargs, *rule[3:])
    return rule


class GuardedApplication(GlobalFuncApplication):
    """The application with :class:`~server.http.guard.RequestGuard` in front of every request."""

    gf_routes: tuple[Route, ...] = ()

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        inner = super().start_request(server_conn, request_conn)
        return RequestGuard(self.gf_state, request_conn, inner, self.gf_routes)


def _guard_routes(routes: Sequence[Any]) -> tuple[Route, ...]:
    """What the guard needs of each route: its path pattern, whether it is public, and how
    its errors look (routes of other handler classes are left out)."""
    out = []
    for rule in routes:
        if (
            isinstance(rule, tuple)
            and len(rule) >= 2
            and isinstance(rule[0], str)
            and isinstance(rule[1], type)
            and issubclass(rule[1], BaseHandler)
        ):
            out.append(Route(re.compile(rule[0]), rule[1].public, rule[1].refusal_payload))
    return tuple(out)


def make_app(
    registry: Registry,
    executor: Executor,
    *,
    token: str | None = None,
    write_token: str | None = None,
    allow_packages: Sequence[str] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_json_depth: int = jsoncodec.DEFAULT_MAX_DEPTH,
    metrics_dir: str | os.PathLike[str] | None = None,
    cors_origins: Sequence[str] | None = None,
    debug: bool = False,
    info: Mapping[str, Any] | None = None,
    catalog_ttl: float = 5.0,
    extra_routes: Sequence[tuple[Any, ...]] = (),
    openapi_extensions: Sequence[OpenAPIExtension] = (),
) -> GlobalFuncApplication:
    """The tornado application serving ``registry``'s functions through ``executor``.

    ``extra_routes`` are tornado rules (``(pattern, handler_class[, kwargs])``) added
    before the built-in ones, e.g. the AIGES ``POST /v1/private/<svc>`` routes. They may
    take the shared :class:`AppState` from ``app.settings["gf_state"]``; a handler that
    subclasses :class:`BaseHandler` gets it passed in and follows the same token check,
    body limit, CORS, JSON errors, metrics and access log as the built-in endpoints.
    ``openapi_extensions`` describe such routes in ``/openapi.json`` (and so on ``/docs``).
    ``max_json_depth`` bounds the nesting of JSON bodies (deeper: 400 ``NestingTooDeep``);
    ``metrics_dir`` is the prometheus-client multiprocess directory when the server runs
    several processes (see :func:`server.http.metrics.enable_multiprocess`).
    ``write_token`` (``GF_WRITE_TOKEN``) is what saving through ``/registry/`` needs; then
    ``token`` may call and read only (without either, the registry takes no writes).
    """
    from server.http.console import console_routes  # it subclasses BaseHandler from here
    from server.http.registry_api import registry_routes
    from server.http.registry_openapi import registry_openapi

    if max_body < 1:
        raise ConfigError(f"max_body must be at least 1 byte, got {max_body}")
    if max_json_depth < 2:
        raise ConfigError(f"max_json_depth must be at least 2, got {max_json_depth}")
    catalog = Catalog(registry, allow_packages=allow_packages, ttl=catalog_ttl)
    state = AppState(
        catalog=catalog,
        executor=executor,
        invoker=Invoker(catalog, executor),
        metrics=Metrics(metrics_dir),
        token=None if not token else f"Bearer {token}".encode(),
        write_token=None if not write_token else f"Bearer {write_token}".encode(),
        max_body=max_body,
        max_json_depth=max_json_depth,
        cors_origins=frozenset(cors_origins or ()),
        debug=debug,
        info={
            "service": "GlobalFunc",
            "version": VERSION,
            "mode": executor.mode,
            "tier1": registry.tier1,
            "branch": registry.branch,
            **(info or {}),
        },
    )
    kw = {"state": state}
    name = r"([^/]{1,300})"
    routes: list[Any] = [
        *(_with_state(rule, state) for rule in extra_routes),
        (r"/", IndexHandler, kw),
        (r"/gfgo/?", GfgoHandler, kw),
        (rf"/call/{name}", CallHandler, kw),
        (r"/functions/?", FunctionsHandler, kw),
        (rf"/functions/{name}", FunctionHandler, kw),
        (r"/search/?", SearchHandler, kw),
        (r"/healthz", HealthHandler, kw),
        (r"/metrics", MetricsHandler, kw),
        (
            r"/openapi\.json",
            OpenAPIHandler,
            {**kw, "extensions": (*openapi_extensions, registry_openapi)},
        ),
        (r"/docs/?", DocsHandler, kw),
        *registry_routes(state),
        *console_routes(kw),
    ]
    app = GuardedApplication(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=kw,
        log_function=_log_request,
        compress_response=False,
        serve_traceback=False,
        gf_state=state,
    )
    app.gf_state = state
    app.gf_routes = _guard_routes(routes)
    return app
