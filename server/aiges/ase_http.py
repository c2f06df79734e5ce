"""The ase HTTP protocol (what the AIGES loader serves) as tornado routes of the GlobalFunc server.

Routes (``gf serve`` adds them to every server, see :func:`server.serve.serve`)::

    POST /<version>/private/<serviceId>   the loader's default route (any version)
    POST /v1/<serviceId>                  the older route
    GET  /ping                            "pong" (public, like /healthz)

The body is ``{"header", "parameter", "payload"}``: ``parameter.<svc>.<k>`` scalars become
``params[k]`` (strings), objects declare the outputs ``k``; ``payload.<key>`` objects become
data frames (type from the ``text``/``image``/``audio``/``video`` field, base64 string,
status). Success is HTTP 200 ``{"header": {"code": 0, "status": 3, "sid"}, "payload":
{...}}`` with text outputs raw and binary ones base64; failures are ``{"header": {"code",
"sid", "message"}, "payload": null}``. An output the request did not declare answers
10106, as the loader does.

Services, by service id:

- **registry functions**: the service id is the function's call name
  (``Base.inverse_time_str``; the same id ``server.aiges.function_host.FunctionEngine``
  gives the gRPC plugin; dots are URL-safe). Every function the server exposes (same
  registry, same allow-list as ``/call/<name>``) is a service. Params and payloads map to
  keyword arguments with ``FunctionEngine.build_kwargs`` (types from the registered
  signature, a JSON text payload ``kwargs`` spread), and the call goes through the
  server's executor exactly like ``POST /gfgo/`` (isolated by default: timeout, memory
  cap, a crash costs one worker). The JSON result is the text output ``result``, which the
  request must declare (checked before the call runs).
- **wrapper.py services** (:func:`load_wrappers`): unchanged AIGES wrapper files, served
  under their ``serviceId``. A wrapper keeps models in memory, so it cannot live in a
  per-call worker: in the server's isolated mode (the default) each wrapper runs in its
  own long-lived plugin process (:mod:`server.aiges.process_engine`: call timeout,
  memory cap, replaced when it hangs or dies, so the server survives it); in inline mode
  it is imported into the server process. A wrapper service id shadows a registry
  function of the same name.

Errors: HTTP 500 with ``header.code`` the error's AIGES code (``aiges_code`` of its
:mod:`globalfunc.errors` class, or the engine's ``ret``), except the access errors that
keep their status: unknown service 404, package not exposed 403, token 401, body too big
413. The handlers subclass :class:`server.http.app.BaseHandler`, so token, body limit, CORS,
metrics and the access log are the server's; only the error body takes the ase shape.

What it does not do: sessions (``wrapperCreate``/``Write``) over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import time
import tomllib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import orjson

from globalfunc.errors import (
    ConfigError,
    Forbidden,
    GlobalFuncError,
    InvalidName,
    InvalidRequest,
    NotFound,
)
from globalfunc.record import FunctionRecord
from server.aiges.engine import INIT_FAILED, Engine, Frame, Outcome
from server.aiges.function_host import FunctionEngine
from server.http.app import BaseHandler
from server.http.state import WWW_AUTHENTICATE, AppState

__all__ = [
    "LEGACY_ROUTE",
    "ROUTE",
    "UNDECLARED_OUTPUT",
    "AseError",
    "AseHandler",
    "AseServices",
    "PingHandler",
    "ase_openapi",
    "ase_routes",
    "build_engines",
    "load_wrappers",
    "parse_body",
    "render_outcome",
]

log = logging.getLogger(__name__)

ROUTE = "/{version}/private/{serviceId}"
"""The loader's default route (``meta.route`` of the schema)."""
LEGACY_ROUTE = "/v1/{serviceId}"
"""The older route of the AIGES documents."""
UNDECLARED_OUTPUT = 10106
"""The loader's code for an output key the request did not declare."""
INTERNAL_ERROR = GlobalFuncError.aiges_code

_KINDS = {"text": 0, "audio": 1, "image": 2, "video": 3}
_NAMES = {v: k for k, v in _KINDS.items()}
_RESULT_DESC = {"encoding": "utf8", "compress": "raw", "format": "json"}
# Access errors keep their HTTP status; every other failure is a 500, as the loader answers.
_KEEP_STATUS = frozenset({401, 403, 404, 413})


class AseError(Exception):
    """A failed ase request: the AIGES ``code`` and ``message`` of the body, and the HTTP status."""

    def __init__(
        self, code: int, message: str, http_status: int = 500, kind: str = "AseError"
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status
        self.kind = kind
        """The error class for metrics and logs (the GlobalFunc error's name when translated)."""

    @classmethod
    def of(cls, err: GlobalFuncError) -> AseError:
        """The ase form of a GlobalFunc error (its ``aiges_code``; see the module docstring)."""
        status = err.http_status if err.http_status in _KEEP_STATUS else 500
        return cls(err.aiges_code, err.message, status, type(err).__name__)

    def body(self, sid: str) -> dict[str, Any]:
        return {"header": {"code": self.code, "sid": sid, "message": self.message}, "payload": None}


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


def _undeclared(key: str) -> AseError:
    return AseError(
        UNDECLARED_OUTPUT,
        f"output {key!r} was not declared: add parameter.<svc>.{key} = "
        '{"encoding": "utf8", "compress": "raw", "format": "plain"} to the request',
        kind="UndeclaredOutput",
    )


def render_outcome(
    outcome: Outcome, outputs: Mapping[str, Mapping[str, Any]], sid: str
) -> dict[str, Any]:
    """The success body for ``outcome``; raises :class:`AseError` for failures/undeclared keys."""
    if outcome.ret:
        raise AseError(
            outcome.ret, outcome.message or f"engine error {outcome.ret}", kind="EngineError"
        )
    payload: dict[str, Any] = {}
    for seq, frame in enumerate(outcome.frames):
        declared = outputs.get(frame.key)
        if declared is None:
            raise _undeclared(frame.key)
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


def _runs_in_the_executor(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError(
        "a registry function on the ase route runs through the server's executor, not here"
    )


class AseServices:
    """What the ase routes serve: in-process engines by service id, plus registry functions.

    Registry functions come from the serving :class:`AppState` (its catalog and executor)
    at request time; this object only caches their argument mappers (one
    :class:`FunctionEngine` per call name and version, built from the registered
    signature; it never imports or runs the function). Engines run on ``workers``
    threads. :meth:`close` finalises the engines and stops the pool.
    """

    def __init__(self, engines: Mapping[str, Engine] | None = None, *, workers: int = 4) -> None:
        self.engines: dict[str, Engine] = dict(engines or {})
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="aiges-http")
        self._mappers: dict[str, tuple[str, FunctionEngine]] = {}
        self._standalone: AppState | None = None

    def mapper(self, record: FunctionRecord) -> FunctionEngine:
        """The params/payloads -> kwargs mapping of ``record``'s signature."""
        name = f"{record.package}.{record.name}"
        hit = self._mappers.get(name)
        if hit is not None and hit[0] == record.sha256:
            return hit[1]
        params = list(record.params)
        engine = FunctionEngine(name, lambda _name: (_runs_in_the_executor, params))
        if engine.init({}) == INIT_FAILED:  # pragma: no cover - the resolver above cannot fail
            raise InvalidRequest(f"cannot map the arguments of {name}")
        self._mappers[name] = (record.sha256, engine)
        return engine

    def standalone_state(self) -> AppState:
        """Shared state for routes mounted outside :func:`server.http.app.make_app`.

        No token, the default body limit, and an empty in-memory registry (so only the
        engines are services); used when :func:`ase_routes` rules go into a plain
        ``tornado.web.Application``.
        """
        if self._standalone is None:
            from gfgo.resolve import Resolver
            from globalfunc.executor import InlineExecutor
            from globalfunc.registry import Registry
            from server.http.catalog import Catalog
            from server.http.metrics import Metrics
            from server.http.state import DEFAULT_MAX_BODY

            registry = Registry.open("sqlite://:memory:")
            self._standalone = AppState(
                catalog=Catalog(registry),
                executor=InlineExecutor(Resolver(registry)),
                metrics=Metrics(),
                token=None,
                max_body=DEFAULT_MAX_BODY,
                cors_origins=frozenset(),
                debug=False,
                info={"service": "GlobalFunc ase"},
            )
        return self._standalone

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for svc, engine in self.engines.items():
            try:
                engine.fini()
            except Exception:
                log.exception("fini of ase service %s failed", svc)
        if self._standalone is not None:
            self._standalone.catalog.registry.close()
            self._standalone = None


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
            body = orjson.loads(self.request.body or b"null")
        except orjson.JSONDecodeError as exc:
            raise AseError(InvalidRequest.aiges_code, f"the body is not JSON: {exc}") from exc
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
            raise _undeclared("result")
        try:
            kwargs = self.services.mapper(record).build_kwargs(params, frames)
        except UnicodeDecodeError as exc:
            raise AseError(
                InvalidRequest.aiges_code, f"a text payload is not UTF-8: {exc}"
            ) from exc
        out = self.state.executor.submit_json(svc, (), kwargs, tagged=False, version=record.sha256)
        data = out if isinstance(out, bytes) else await out
        outcome = Outcome(ret=0, frames=[Frame("result", data, 0, 3, dict(_RESULT_DESC))])
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
    svc = r"([^/]{1,200})"
    return [
        (rf"/v1/{svc}", AseV1Handler, kw),
        (rf"/([^/]{{1,20}})/private/{svc}", AseHandler, kw),
        (r"/ping", PingHandler, kw),
    ]


# -- wrapper.py services -----------------------------------------------------------------------
def _wrapper_location(target: Path) -> tuple[Path, Path | None]:
    """The wrapper file of a wrapper dir, file or ``gf aiges create`` project, and its aiges.toml."""
    if target.is_file():
        toml = target.parent / "aiges.toml"
        return target, toml if toml.is_file() else None
    for candidate in (target / "wrapper.py", target / "wrapper" / "wrapper.py"):
        if candidate.is_file():
            for toml in (candidate.parent / "aiges.toml", candidate.parent.parent / "aiges.toml"):
                if toml.is_file():
                    return candidate, toml
            return candidate, None
    raise ConfigError(
        f"no wrapper.py in {target} (nor in {target / 'wrapper'}); pass an AIGES wrapper "
        "directory, its wrapper.py, or a project made by 'gf aiges create'"
    )


def _wrapper_config(toml: Path | None) -> dict[str, str]:
    if toml is None:
        return {}
    try:
        data = tomllib.loads(toml.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the [wrapper] config of {toml}: {exc}") from exc
    section = data.get("wrapper", {})
    return {str(k): str(v) for k, v in section.items()} if isinstance(section, dict) else {}


def load_wrappers(
    paths: Iterable[str | os.PathLike[str]],
    *,
    isolated: bool = False,
    call_timeout: float = 30.0,
    memory_mb: int | None = None,
) -> dict[str, Engine]:
    """Load and init each wrapper (dir, ``wrapper.py`` or project), keyed by its serviceId.

    ``isolated`` runs each wrapper in its own plugin process
    (:class:`~server.aiges.process_engine.ProcessEngine`: ``call_timeout``, a
    ``memory_mb`` cap, replaced when it hangs or dies); otherwise it is imported into this
    process. ``wrapperInit`` gets the ``[wrapper]`` table of an ``aiges.toml`` next to the
    wrapper or its project, as under the loader. Raises :class:`ConfigError` naming the
    wrapper that failed to load or init, or a service id served twice; engines already
    initialised are finalised first.
    """
    from server.aiges.process_engine import ProcessEngine
    from server.aiges.wrapper_host import WrapperEngine

    engines: dict[str, Engine] = {}
    try:
        for raw in paths:
            file, toml = _wrapper_location(Path(raw))
            engine: WrapperEngine | ProcessEngine = (
                ProcessEngine(file, call_timeout=call_timeout, memory_mb=memory_mb)
                if isolated
                else WrapperEngine(file)
            )
            if (ret := engine.init(_wrapper_config(toml))) != 0:
                raise ConfigError(
                    f"wrapper {file} failed to init (code {ret}): "
                    f"{engine.load_error or 'wrapperInit returned an error'}"
                )
            svc = str(engine.schema("")["meta"]["serviceId"])
            if svc in engines:
                engine.fini()
                raise ConfigError(
                    f"two wrappers serve the service id {svc!r}; the second is {file}"
                )
            engines[svc] = engine
            log.info(
                "ase service %s from %s (%s)",
                svc,
                file,
                "own process" if isolated else "in-process",
            )
    except BaseException:
        for loaded in engines.values():
            loaded.fini()
        raise
    return engines


def build_engines(
    *,
    wrappers: Iterable[str] = (),
    functions: Iterable[str] = (),
    root: str | None = None,
    config: Mapping[str, str] | None = None,
) -> dict[str, Engine]:
    """Load and init in-process engines for wrappers and registry function names, by service id.

    For a standalone ase app (tests, tools); ``gf serve`` runs registry functions through
    its executor instead. Raises :class:`InvalidRequest` naming the engine whose init failed.
    """
    from server.aiges.function_host import packages_resolver
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


# -- OpenAPI -----------------------------------------------------------------------------------
_REF = "#/components/schemas/"
_ASE_ERRORS = {
    "401": "Missing or wrong bearer token (code 10105)",
    "403": "Package not exposed by this server (code 10105)",
    "404": "No such service (code 10107)",
    "413": "Body too large (code 10106)",
    "500": "The call failed: header.code is the AIGES code (10106 bad request or "
    "undeclared output, 30003 the function raised, 10910 its worker crashed, 10102 "
    "timeout, or the wrapper's own code)",
}
_SCHEMAS: dict[str, Any] = {
    "AseRequest": {
        "type": "object",
        "description": "parameter.<serviceId>.<k>: a scalar is a parameter, an object declares "
        "the output k; payload.<key>: one data item, text/image/audio/video base64",
        "properties": {
            "header": {
                "type": "object",
                "properties": {"appid": {"type": "string"}, "uid": {"type": "string"}},
            },
            "parameter": {"type": "object", "additionalProperties": {"type": "object"}},
            "payload": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    },
    "AseSuccess": {
        "type": "object",
        "required": ["header", "payload"],
        "properties": {
            "header": {
                "type": "object",
                "properties": {
                    "code": {"const": 0},
                    "status": {"type": "integer"},
                    "sid": {"type": "string"},
                },
            },
            "payload": {
                "type": "object",
                "description": "one entry per declared output: attributes as strings, "
                "text raw, image/audio/video base64",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "encoding": {"type": "string"},
                        "compress": {"type": "string"},
                        "format": {"type": "string"},
                        "seq": {"type": "string"},
                        "status": {"type": "string"},
                        "text": {"type": "string"},
                    },
                },
            },
        },
    },
    "AseError": {
        "type": "object",
        "required": ["header", "payload"],
        "properties": {
            "header": {
                "type": "object",
                "required": ["code", "sid", "message"],
                "properties": {
                    "code": {"type": "integer", "examples": [10106]},
                    "sid": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
            "payload": {"type": "null"},
        },
    },
}


def _operation(summary: str, request: dict[str, Any], **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": _REF + "AseSuccess"}}},
        }
    }
    for code, text in _ASE_ERRORS.items():
        responses[code] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": _REF + "AseError"}}},
        }
    return {
        "summary": summary,
        "tags": ["ase"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": responses,
        **extra,
    }


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _service_input(engine: Any, svc: str) -> dict[str, Any]:
    try:
        schema = engine.schema(svc)["schemainput"]
    except Exception:  # a wrapper whose schema cannot be built still gets the generic body
        log.warning("no ase schema for %s", svc, exc_info=True)
        return {"$ref": _REF + "AseRequest"}
    return dict(schema) if isinstance(schema, dict) else {"$ref": _REF + "AseRequest"}


def ase_openapi(services: AseServices, records: Sequence[FunctionRecord]) -> dict[str, Any]:
    """OpenAPI ``paths`` and ``components.schemas`` of the ase routes, one path per service."""
    generic = {"$ref": _REF + "AseRequest"}
    paths: dict[str, Any] = {
        "/{version}/private/{serviceId}": {
            "post": _operation(
                "ase protocol call of any service (the AIGES loader's route)",
                generic,
                parameters=[_path_param("version"), _path_param("serviceId")],
            )
        },
        "/v1/{serviceId}": {
            "post": _operation(
                "ase protocol call, the older route", generic, parameters=[_path_param("serviceId")]
            )
        },
        "/ping": {
            "get": {
                "summary": "ase liveness: pong",
                "tags": ["ase"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "pong",
                        "content": {"text/plain": {"schema": {"const": "pong"}}},
                    }
                },
            }
        },
    }
    services_ops: dict[str, Any] = {}
    for record in records:
        svc = f"{record.package}.{record.name}"
        if svc in services.engines:
            continue
        services_ops[svc] = _operation(
            f"ase: {svc} (registry function; JSON result as text output 'result')",
            _service_input(services.mapper(record), svc),
            description=f"`{svc}{record.signature}` over the ase protocol. Parameters as "
            f"parameter.{svc}.<name>, or a JSON text payload 'kwargs'; declare the output "
            f'parameter.{svc}.result = {{"encoding": "utf8", "compress": "raw", '
            '"format": "plain"}.',
            operationId="ase_" + re.sub(r"\W", "_", svc),
        )
    for svc, engine in services.engines.items():
        services_ops[svc] = _operation(
            f"ase: {svc} (wrapper.py service, runs in the server process)",
            _service_input(engine, svc),
            operationId="ase_" + re.sub(r"\W", "_", svc),
        )
    for svc in sorted(services_ops):
        paths[f"/v1/private/{svc}"] = {"post": services_ops[svc]}
    return {"paths": paths, "components": {"schemas": dict(_SCHEMAS)}}
