"""The ase routes in ``/openapi.json``: the fragment :func:`ase_openapi` adds to the document.

Operations are written with the HTTP server's builder (:func:`server.http.openapi.operation`
and friends); this module holds only what is particular to the ase protocol: its body and
error schemas, its error codes, and one path per service whose request schema is the
service's ``schemainput`` (turned from the loader's dialect into ordinary JSON Schema).
It does not build the document: :func:`server.http.openapi.build_openapi` merges the
fragment in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from globalfunc.record import FunctionRecord
from globalfunc.signature import CallSpec
from server.aiges.ase_http.services import AseServices
from server.aiges.schema import standard_json_schema
from server.http.openapi import operation, operation_id, path_param, responses, schema_ref

__all__ = ["ase_openapi"]

log = logging.getLogger(__name__)

_ASE_ERRORS = {
    400: "Malformed request, header.code 10106: not JSON, nested too deep, a wrong "
    "header/parameter/payload shape, or an output the request did not declare",
    401: "Missing or wrong bearer token (code 10105)",
    403: "Package not exposed by this server (code 10105)",
    404: "No such service (code 10107)",
    413: "Body too large (code 10106)",
    422: "Arguments that do not fit the function's annotations (code 10106, BadArguments)",
    500: "The call failed: header.code is the AIGES code (30003 the function raised, 10910 "
    "its worker crashed, 10102 timeout, or the wrapper's own code)",
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
_GENERIC = schema_ref("AseRequest")
_SEGMENT = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[A-Za-z0-9._~-]+$"}
_PONG = {"const": "pong"}


def _ase_operation(summary: str, request: dict[str, Any], **extra: Any) -> dict[str, Any]:
    answers = responses(schema_ref("AseSuccess"), _ASE_ERRORS, schema_ref("AseError"))
    return operation(summary, answers, body=request, tags=["ase"], **extra)


def _service_input(engine: Any, svc: str) -> dict[str, Any]:
    try:
        schema = engine.schema(svc)["schemainput"]
    except Exception:  # a wrapper whose schema cannot be built still gets the generic body
        log.warning("no ase schema for %s", svc, exc_info=True)
        return dict(_GENERIC)
    return standard_json_schema(schema) if isinstance(schema, dict) else dict(_GENERIC)


_OUTPUT = {
    "type": "object",
    "description": "declares an output: its attributes",
    "properties": {
        "encoding": {"type": "string"},
        "compress": {"type": "string"},
        "format": {"type": "string"},
        "data_type": {"type": "integer"},
    },
}


def _registry_input(record: FunctionRecord, svc: str) -> dict[str, Any]:
    """The body calling a registry function: the keyword arguments as the JSON value of the
    text payload ``kwargs`` (checked by CallSpec exactly as on ``/call/``), and the output
    ``result`` declared under ``parameter.<svc>``. (Scalars under ``parameter.<svc>``
    travel as text, as the loader sends them, and are converted by annotation; the
    document describes the typed form.)"""
    return {
        "type": "object",
        "required": ["parameter", "payload"],
        "properties": {
            "header": {"type": "object"},
            "parameter": {
                "type": "object",
                "required": [svc],
                "properties": {
                    svc: {
                        "type": "object",
                        "required": ["result"],
                        "properties": {"result": _OUTPUT},
                        "additionalProperties": _OUTPUT,
                    }
                },
            },
            "payload": {
                "type": "object",
                "required": ["kwargs"],
                "properties": {
                    "kwargs": {
                        "type": "object",
                        "required": ["text"],
                        "properties": {"text": CallSpec.of(record).request_schema()},
                        "additionalProperties": False,
                    }
                },
                "additionalProperties": False,
            },
        },
    }


def _fixed_paths() -> dict[str, Any]:
    return {
        "/{version}/private/{serviceId}": {
            "post": _ase_operation(
                "ase protocol call of any service (the AIGES loader's route)",
                _GENERIC,
                parameters=[path_param("version", _SEGMENT), path_param("serviceId", _SEGMENT)],
            )
        },
        "/v1/{serviceId}": {
            "post": _ase_operation(
                "ase protocol call, the older route",
                _GENERIC,
                parameters=[path_param("serviceId", _SEGMENT)],
            )
        },
        "/ping": {
            "get": operation(
                "ase liveness: pong",
                {"200": {"description": "pong", "content": {"text/plain": {"schema": _PONG}}}},
                tags=["ase"],
                security=[],
            )
        },
    }


def ase_openapi(services: AseServices, records: Sequence[FunctionRecord]) -> dict[str, Any]:
    """OpenAPI ``paths`` and ``components.schemas`` of the ase routes, one path per service."""
    paths = _fixed_paths()
    services_ops: dict[str, Any] = {}
    for record in records:
        svc = f"{record.package}.{record.name}"
        if svc in services.engines:
            continue
        services_ops[svc] = _ase_operation(
            f"ase: {svc} (registry function; JSON result as text output 'result')",
            _registry_input(record, svc),
            description=f"`{svc}{record.signature}` over the ase protocol. Parameters as "
            f"parameter.{svc}.<name>, or a JSON text payload 'kwargs'; declare the output "
            f'parameter.{svc}.result = {{"encoding": "utf8", "compress": "raw", '
            '"format": "plain"}.',
            operationId=operation_id("ase_", svc),
        )
    for svc, engine in services.engines.items():
        services_ops[svc] = _ase_operation(
            f"ase: {svc} (wrapper.py service, runs in the server process)",
            _service_input(engine, svc),
            operationId=operation_id("ase_", svc),
        )
    for svc in sorted(services_ops):
        paths[f"/v1/private/{svc}"] = {"post": services_ops[svc]}
    return {"paths": paths, "components": {"schemas": dict(_SCHEMAS)}}
