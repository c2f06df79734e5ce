"""The ase HTTP protocol (what the AIGES loader serves) as tornado routes over our engines.

``POST /<version>/private/<svc>`` (and the older ``POST /v1/<svc>``) take the
``{"header", "parameter", "payload"}`` body: ``parameter.<svc>.<k>`` scalars become
``params[k]``, objects declare the outputs ``k``; ``payload.<key>`` objects become data
frames (type from the ``text``/``image``/``audio``/``video`` field, base64 string, status).
Success is HTTP 200 ``{"header": {"code": 0, "status": 3, "sid"}, "payload": {...}}`` with
text raw and binary base64; failures are ``{"header": {"code", "sid", "message"},
"payload": null}`` (HTTP 500, 404 for an unknown service). An output key that the request
did not declare answers 10106, as the loader does. ``GET /ping`` answers ``pong``.

Engines are the same ones the gRPC plugin hosts (a ``wrapper.py`` or registry functions),
already initialised; their calls run on a thread pool, never on the IOLoop.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.ioloop
import tornado.web

from globalfunc.errors import InvalidRequest, NotFound
from server.aiges.engine import INIT_FAILED, Engine, Frame, Outcome

__all__ = [
    "AseHandler",
    "PingHandler",
    "ase_routes",
    "build_engines",
    "parse_body",
    "render_outcome",
]

log = logging.getLogger(__name__)

_KINDS = {"text": 0, "audio": 1, "image": 2, "video": 3}
_NAMES = {v: k for k, v in _KINDS.items()}
UNDECLARED_OUTPUT = 10106


class AseError(Exception):
    def __init__(self, code: int, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def parse_body(
    svc: str, body: Any
) -> tuple[dict[str, str], dict[str, dict[str, Any]], list[Frame]]:
    """``(params, declared_outputs, frames)`` of an ase request body for service ``svc``."""
    if not isinstance(body, dict):
        raise AseError(
            InvalidRequest.aiges_code,
            "the body must be a JSON object with header/parameter/payload",
        )
    parameter = body.get("parameter") or {}
    section = parameter.get(svc, {}) if isinstance(parameter, dict) else {}
    if not isinstance(section, dict):
        raise AseError(InvalidRequest.aiges_code, f"parameter.{svc} must be an object")
    params: dict[str, str] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            outputs[key] = value
        elif value is not None:
            params[key] = _scalar(value)
    frames: list[Frame] = []
    payload = body.get("payload") or {}
    if not isinstance(payload, dict):
        raise AseError(InvalidRequest.aiges_code, "payload must be an object")
    for key, item in payload.items():
        if not isinstance(item, dict):
            raise AseError(InvalidRequest.aiges_code, f"payload.{key} must be an object")
        kind = next((k for k in _KINDS if k in item), None)
        if kind is None:
            raise AseError(
                InvalidRequest.aiges_code, f"payload.{key} has none of text/image/audio/video"
            )
        raw = item[kind]
        if isinstance(raw, str):
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AseError(
                    InvalidRequest.aiges_code, f"payload.{key}.{kind} is not base64: {exc}"
                ) from exc
        else:
            data = json.dumps(raw).encode()
        try:
            status = int(item.get("status", 3))
        except (TypeError, ValueError):
            raise AseError(InvalidRequest.aiges_code, f"payload.{key}.status must be 0-3") from None
        desc = {k: _scalar(v) for k, v in item.items() if k not in (kind, "status")}
        frames.append(Frame(key, data, _KINDS[kind], status, desc))
    return params, outputs, frames


def render_outcome(
    outcome: Outcome, outputs: Mapping[str, Mapping[str, Any]], sid: str
) -> dict[str, Any]:
    """The success body for ``outcome``; raises :class:`AseError` for failures/undeclared keys."""
    if outcome.ret:
        raise AseError(outcome.ret, outcome.message or f"engine error {outcome.ret}")
    payload: dict[str, Any] = {}
    for seq, frame in enumerate(outcome.frames):
        declared = outputs.get(frame.key)
        if declared is None:
            raise AseError(
                UNDECLARED_OUTPUT,
                f"output {frame.key!r} was not declared: add parameter.<svc>.{frame.key} = "
                '{"encoding": "utf8", "compress": "raw", "format": "plain"} to the request',
            )
        kind = _NAMES.get(frame.type, "text")
        entry: dict[str, Any] = {
            "encoding": "utf8",
            "compress": "raw",
            "format": "plain",
            **{k: _scalar(v) for k, v in frame.desc.items()},
            **{k: _scalar(v) for k, v in declared.items() if k != "data_type"},
            "seq": str(seq),
            "status": str(frame.status),
        }
        if kind == "text":
            entry["text"] = frame.data.decode("utf-8", errors="replace")
        else:
            entry[kind] = base64.b64encode(frame.data).decode("ascii")
        payload[frame.key] = entry
    return {"header": {"code": 0, "status": 3, "sid": sid}, "payload": payload}


class AseHandler(tornado.web.RequestHandler):
    """``POST /<version>/private/<svc>`` and ``POST /v1/<svc>``."""

    def initialize(self, engines: Mapping[str, Engine], pool: ThreadPoolExecutor) -> None:
        self.engines = engines
        self.pool = pool

    def _reply(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, ensure_ascii=False))

    async def post(self, *parts: str) -> None:
        svc = parts[-1]
        sid = uuid.uuid4().hex
        try:
            engine = self.engines.get(svc)
            if engine is None:
                raise AseError(
                    NotFound.aiges_code,
                    f"no AIGES service {svc!r} here; known: {', '.join(sorted(self.engines)) or 'none'}",
                    404,
                )
            try:
                body = json.loads(self.request.body or b"null")
            except ValueError as exc:
                raise AseError(InvalidRequest.aiges_code, f"the body is not JSON: {exc}") from exc
            params, outputs, frames = parse_body(svc, body)
            loop = tornado.ioloop.IOLoop.current()
            outcome = await loop.run_in_executor(self.pool, engine.once, params, frames, sid)
            self._reply(200, render_outcome(outcome, outputs, sid))
        except AseError as err:
            log.info("ase %s failed: %s %s", svc, err.code, err.message)
            self._reply(
                err.http_status,
                {"header": {"code": err.code, "sid": sid, "message": err.message}, "payload": None},
            )


class PingHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("pong")


def ase_routes(
    engines: Mapping[str, Engine], *, workers: int = 4
) -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado rules serving ``engines`` (service id -> initialised engine) over ase HTTP."""
    kw: dict[str, Any] = {
        "engines": dict(engines),
        "pool": ThreadPoolExecutor(workers, thread_name_prefix="aiges-http"),
    }
    svc = r"([^/]{1,200})"
    return [
        (rf"/([^/]{{1,20}})/private/{svc}", AseHandler, kw),
        (rf"/v1/{svc}", AseHandler, kw),
        (r"/ping", PingHandler, {}),
    ]


def build_engines(
    *,
    wrappers: Iterable[str] = (),
    functions: Iterable[str] = (),
    root: str | None = None,
    config: Mapping[str, str] | None = None,
) -> dict[str, Engine]:
    """Load and init engines for wrapper dirs/files and registry function names, keyed by service id.

    Raises :class:`InvalidRequest` naming the engine whose init failed.
    """
    from server.aiges.function_host import FunctionEngine, packages_resolver
    from server.aiges.wrapper_host import WrapperEngine

    engines: dict[str, Engine] = {}
    for path in wrappers:
        w = WrapperEngine(path)
        if (ret := w.init(dict(config or {}))) != 0:
            raise InvalidRequest(f"wrapper {path} failed to init ({ret}): {w.load_error}")
        engines[str(w.schema("")["meta"]["serviceId"])] = w
    names = list(functions)
    if names:
        resolver = packages_resolver(root or "packages")
        for name in names:
            f = FunctionEngine(name, resolver)
            if f.init({}) == INIT_FAILED:
                raise InvalidRequest(f"function {name} cannot be loaded from {root or 'packages'}")
            engines[f.service_id] = f
    return engines
