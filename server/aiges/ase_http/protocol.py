"""The ase protocol's shapes and codes: a request body in, a success or error body out.

Pure data handling, no HTTP server and no function calls: :func:`parse_body` turns a
request body into ``(params, declared outputs, frames)``, :func:`render_outcome` turns an
engine's :class:`~server.aiges.engine.Outcome` into the success body, and
:class:`AseError` carries a failure's AIGES ``code``, message and HTTP status into the
error body. The shapes are those of docs/aiges-compat.md section 4.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from globalfunc.errors import GlobalFuncError, InvalidRequest
from server.aiges.engine import Frame, Outcome

__all__ = [
    "INTERNAL_ERROR",
    "LEGACY_ROUTE",
    "RESULT_DESC",
    "ROUTE",
    "UNDECLARED_OUTPUT",
    "AseError",
    "parse_body",
    "render_outcome",
    "undeclared",
]

ROUTE = "/{version}/private/{serviceId}"
"""The loader's default route (``meta.route`` of the schema)."""
LEGACY_ROUTE = "/v1/{serviceId}"
"""The older route of the AIGES documents."""
UNDECLARED_OUTPUT = 10106
"""The loader's code for an output key the request did not declare."""
INTERNAL_ERROR = GlobalFuncError.aiges_code
"""The code of a failure that is nobody's fault but ours."""
RESULT_DESC = {"encoding": "utf8", "compress": "raw", "format": "json"}
"""The attributes of a registry function's JSON ``result`` output."""

_KINDS = {"text": 0, "audio": 1, "image": 2, "video": 3}
_NAMES = {v: k for k, v in _KINDS.items()}


class AseError(Exception):
    """A failed ase request: the AIGES ``code`` and ``message`` of the body, and the HTTP status.

    The status is the caller's to give; by default a request the client got wrong (the
    loader's 10106: not JSON, a wrong shape, an undeclared output) is a 400 and anything
    else a 500. The body keeps the AIGES code either way.
    """

    def __init__(
        self, code: int, message: str, http_status: int | None = None, kind: str = "AseError"
    ) -> None:
        super().__init__(message)
        if http_status is None:
            http_status = 400 if code == InvalidRequest.aiges_code else 500
        self.code, self.message, self.http_status = code, message, http_status
        self.kind = kind
        """The error class for metrics and logs (the GlobalFunc error's name when translated)."""

    @classmethod
    def of(cls, err: GlobalFuncError) -> AseError:
        """The ase form of a GlobalFunc error: its ``aiges_code``; a client's mistake keeps its
        4xx status, every failure of the server or the function is a 500, as the loader answers."""
        status = err.http_status if 400 <= err.http_status < 500 else 500
        return cls(err.aiges_code, err.message, status, type(err).__name__)

    def body(self, sid: str) -> dict[str, Any]:
        return {"header": {"code": self.code, "sid": sid, "message": self.message}, "payload": None}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _frame(key: str, item: Any) -> Frame:
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
    return Frame(key, data, _KINDS[kind], status, desc)


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
    payload = body.get("payload") or {}
    if not isinstance(payload, dict):
        raise AseError(InvalidRequest.aiges_code, "payload must be an object")
    frames = [_frame(key, item) for key, item in payload.items()]
    return params, outputs, frames


def undeclared(key: str) -> AseError:
    """The loader's 10106 for an output ``key`` the request did not declare."""
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
            raise undeclared(frame.key)
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
