"""The web console at ``/ui``: browse, search, read history and diffs, describe, try a call.

The page, its script and its style are static files shipped in the package
(``server/http/static/console/``): no build step, no CDN, nothing fetched from elsewhere.
They hold no data and are served without a token, like ``/docs``; everything the page
shows comes from token-protected JSON endpoints (the same token as the API, which the
page asks for and keeps in the tab's ``sessionStorage``):

    GET  /ui/api/functions            the exposed functions of the served branch
    GET  /ui/api/functions/<name>     one function: every version (code, description),
                                      the JSON schema of a call's arguments
    POST /ui/api/describe/<name>      {"description": "..."}: a new version, same code;
                                      a write: the write token (as /registry/save) and
                                      ``Content-Type: application/json``
    GET  /ui/api/workers              the executor's live workers and queues

Searching uses ``GET /search`` and calling ``POST /call/<name>``, as any client does.
This module does not run functions or rank anything itself.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, ClassVar

import orjson

from globalfunc.errors import InvalidRequest
from globalfunc.record import FunctionRecord
from globalfunc.signature import CallSpec
from server.http.handler import BaseHandler
from server.http.registry_api import check_write

__all__ = ["console_routes"]

_STATIC = {
    "console.js": "application/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}


class ConsoleFileHandler(BaseHandler):
    route = "/ui"
    public = True
    _cache: ClassVar[dict[str, bytes]] = {}

    def get(self, name: str = "index.html") -> None:
        name = name or "index.html"
        if name not in _STATIC:
            self.set_status(404)
            self.send_json({"error": "NotFound", "message": f"no console file {name[:80]!r}"})
            return
        body = self._cache.get(name)
        if body is None:
            folder = resources.files("server.http").joinpath("static/console")
            body = self._cache[name] = folder.joinpath(name).read_bytes()
        self.set_header("Content-Type", _STATIC[name])
        self.set_header("Cache-Control", "no-cache")
        self.finish(body)


def _version(record: FunctionRecord) -> dict[str, Any]:
    return {
        "sha256": record.sha256,
        "saved_at": record.saved_at,
        "deleted": record.deleted,
        "commit": record.commit,
        "dirty": record.dirty,
        "description": record.description,
        "code": record.code,
    }


def _summary(record: FunctionRecord) -> dict[str, Any]:
    doc = (record.docstring or "").strip()
    return {
        "name": f"{record.package}.{record.name}",
        "package": record.package,
        "branch": record.branch,
        "signature": f"{record.package}.{record.name}{record.signature}",
        "description": record.description,
        "summary": doc.splitlines()[0] if doc else "",
    }


class ConsoleFunctionsHandler(BaseHandler):
    route = "/ui/api/functions"

    def get(self) -> None:
        self.send_json({"functions": [_summary(r) for r in self.state.catalog.functions()]})


class ConsoleFunctionHandler(BaseHandler):
    route = "/ui/api/functions/<name>"

    def get(self, name: str) -> None:
        record = self.state.catalog.lookup(name)
        history = self.state.catalog.history(name)
        try:
            schema: dict[str, Any] | None = CallSpec.of(record).request_schema()
        except Exception:  # a signature the checker cannot describe: the form says so
            schema = None
        self.send_json(
            {
                **_summary(record),
                "docstring": record.docstring,
                "schema": schema,
                "versions": [_version(r) for r in history],
            }
        )


class ConsoleDescribeHandler(BaseHandler):
    route = "/ui/api/describe/<name>"

    def prepare(self) -> None:
        super().prepare()
        if self.request.method == "OPTIONS":
            return
        # A description is a new version: a write, with /registry/save's token rule.
        check_write(self.state, self.request.headers.get("Authorization"))
        # JSON only: a cross-site form or no-cors fetch can send text/plain, not this.
        kind = self.request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            raise InvalidRequest(
                f"describe takes a JSON body; send 'Content-Type: application/json' "
                f"(got {kind[:60]!r})"
            )

    def post(self, name: str) -> None:
        record = self.state.catalog.lookup(name)
        try:
            body = orjson.loads(self.request.body or b"{}")
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                f'the body is not JSON ({exc}); send {{"description": "..."}}'
            ) from None
        text = body.get("description") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise InvalidRequest('send {"description": "<text>"} ("" removes the description)')
        registry = self.state.catalog.registry
        result = registry.describe(name, text, branch=record.branch)
        self.state.catalog.forget(name)
        self.send_json({"key": result.key, "added": result.added, "description": text.strip()})


class ConsoleWorkersHandler(BaseHandler):
    route = "/ui/api/workers"

    def get(self) -> None:
        self.send_json({"mode": self.state.executor.mode, **self.state.executor.stats()})


def console_routes(kw: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The console's tornado rules (``kw``: the handlers' ``initialize`` arguments)."""
    name = r"([^/]{1,300})"
    return [
        (r"/ui/?", ConsoleFileHandler, kw),
        (r"/ui/static/([a-z.]{1,40})", ConsoleFileHandler, kw),
        (r"/ui/api/functions/?", ConsoleFunctionsHandler, kw),
        (rf"/ui/api/functions/{name}", ConsoleFunctionHandler, kw),
        (rf"/ui/api/describe/{name}", ConsoleDescribeHandler, kw),
        (r"/ui/api/workers", ConsoleWorkersHandler, kw),
    ]
