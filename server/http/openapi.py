"""The OpenAPI 3.1 document of the HTTP server: exactly what each endpoint accepts and returns.

Per-function schemas come from :class:`globalfunc.signature.CallSpec`, the model the
server checks arguments with (one model, no second mapping from annotation text): the body
of ``POST /call/<name>`` is the keyword-arguments object, ``POST /gfgo/`` takes one branch
per function and way of splitting its arguments between ``args`` and ``kwargs``, and the
result (bare on ``/gfgo/``, ``{"result": ...}`` on ``/call/``) has the schema of the
return annotation. Names in paths and queries carry the patterns of
:mod:`globalfunc.naming`; a query that must not be empty says ``minLength``. Every status
an operation can answer is listed, each error with the JSON schema of its body.

Routes added with ``make_app(extra_routes=...)`` describe themselves through fragments
passed as ``extensions`` (the ase protocol's come from
:func:`server.aiges.ase_http.ase_openapi`), built with this module's operation helpers
(:func:`operation`, :func:`responses`, ...), so there is one way to write an operation.

What it does not do: check requests (the handlers and ``CallSpec`` do) or import the
functions it describes.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from typing import Any

from globalfunc.naming import MAX_NAME, MAX_PART
from globalfunc.record import FunctionRecord
from globalfunc.search import MAX_QUERY_CHARS
from globalfunc.signature import CallSpec

# -- name patterns (globalfunc.naming's rules, as ECMA-262 regular expressions) -----------
_END = r"(?![\s\S])"  # end of input; "$" would also match before a final newline in Python
_KEYWORDS = "|".join(sorted({*keyword.kwlist, *keyword.softkwlist} - {"_"}))
_PART = rf"[A-Za-z][A-Za-z0-9_]{{0,{MAX_PART - 1}}}"
_NO_KEYWORD = rf"(?!(?:[^.]*\.)*(?:{_KEYWORDS})(?:\.|{_END}))"
CALL_NAME_PATTERN = rf"^{_NO_KEYWORD}{_PART}(?:\.{_PART})+{_END}"
"""A call name ``Package.func`` (nested ``pkg.sub.func``): identifiers, no leading ``_``,
no keywords, at most :data:`~globalfunc.naming.MAX_PART` characters a part."""
PACKAGE_PATTERN = rf"^{_NO_KEYWORD}{_PART}(?:\.{_PART})*{_END}"
"""A package name (``Base``, ``pkg.sub``)."""
NOT_BLANK = r"\S"
"""Holds a character that is not white space."""

CALL_NAME: dict[str, Any] = {
    "type": "string",
    "pattern": CALL_NAME_PATTERN,
    "minLength": 3,
    "maxLength": MAX_NAME,
}


def kwargs_schema(record: FunctionRecord) -> dict[str, Any]:
    """The JSON Schema of the body of ``POST /call/<name>`` for this function."""
    return CallSpec.of(record).request_schema()


def gfgo_branches(record: FunctionRecord) -> list[dict[str, Any]]:
    """The ``/gfgo/`` bodies calling ``record``: one per number of arguments sent by position.

    The first ``k`` positional parameters in ``args`` (exactly ``k`` items, more only with
    ``*args``), the rest in ``kwargs``; a split that leaves a required positional-only
    parameter out is no branch.
    """
    spec = CallSpec.of(record)
    name = f"{record.package}.{record.name}"
    positional = spec.positional
    extra_args = spec.var_positional()
    out: list[dict[str, Any]] = []
    for k in range(len(positional) + 1):
        taken = positional[:k]
        kwargs = spec.keywords_schema(skip=taken)
        if kwargs is None:
            continue
        args: dict[str, Any] = {"type": "array", "minItems": k}
        if taken:
            args["prefixItems"] = [spec.param_schema(n) for n in taken]
        if extra_args is not None and k == len(positional):
            args["items"] = extra_args
        else:
            args["maxItems"] = k
        required = ["pack_func"]
        if k:
            required.append("args")
        if kwargs.get("required"):
            required.append("kwargs")
        out.append(
            {
                "type": "object",
                "required": required,
                "properties": {"pack_func": {"const": name}, "args": args, "kwargs": kwargs},
            }
        )
    return out


# -- the operation builder (shared with the ase routes, server.aiges.ase_http.openapi) ----------
SCHEMAS = "#/components/schemas/"


def schema_ref(name: str) -> dict[str, Any]:
    """A reference to ``components.schemas.<name>``."""
    return {"$ref": SCHEMAS + name}


def json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A ``content`` object holding one ``application/json`` schema."""
    return {"application/json": {"schema": schema}}


def path_param(name: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A required path parameter (a string matching ``schema``, any non-empty one by default)."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": dict(schema) if schema is not None else {"type": "string", "minLength": 1},
    }


def responses(
    ok: Mapping[str, Any], errors: Mapping[int, str], error_schema: Mapping[str, Any]
) -> dict[str, Any]:
    """``200`` with the ``ok`` schema, then each error status with its description."""
    out: dict[str, Any] = {"200": {"description": "OK", "content": json_content(ok)}}
    for code, description in errors.items():
        out[str(code)] = {"description": description, "content": json_content(error_schema)}
    return out


def operation(
    summary: str,
    answers: Mapping[str, Any],
    *,
    body: Mapping[str, Any] | None = None,
    body_required: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """One operation: summary, an optional JSON request body, responses, and ``extra`` fields."""
    op: dict[str, Any] = {"summary": summary, **extra}
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": json_content(body)}
    op["responses"] = dict(answers)
    return op


def operation_id(prefix: str, name: str) -> str:
    """An ``operationId``: ``prefix`` plus ``name`` with non-word characters as ``_``."""
    return prefix + re.sub(r"\W", "_", name)


_ERROR = schema_ref("Error")
DESCRIPTIONS = {
    400: "Malformed request: not JSON, nested too deep, a wrong body shape, an invalid name",
    401: "Missing or wrong bearer token",
    403: "Package not exposed by this server",
    404: "No such registered function or package",
    413: "Body too large (GF_MAX_BODY)",
    422: "Arguments that do not fit the function's annotations (BadArguments)",
    500: "The function raised or crashed, its result is not JSON, or the server failed",
    503: "Overloaded (Retry-After) or the storage is unavailable",
    504: "The function ran past its timeout",
}
"""What each status means, for every operation that can answer it."""


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a worker runs each key once and answers repeats with the recorded outcome",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"},
}


def _responses(ok: Mapping[str, Any], *codes: int) -> dict[str, Any]:
    return responses(ok, {code: DESCRIPTIONS[code] for code in codes}, _ERROR)


_CALL_CODES = (400, 401, 403, 404, 413, 422, 500, 503, 504)
_OBJECT: dict[str, Any] = {"type": "object"}


def _any_of(schemas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    unique: list[dict[str, Any]] = []
    for s in schemas:
        if not s:
            return {}
        if dict(s) not in unique:
            unique.append(dict(s))
    if not unique:
        return {}
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def _gfgo_body(records: Sequence[FunctionRecord]) -> dict[str, Any]:
    branches = [b for r in records for b in gfgo_branches(r)]
    if not branches:  # nothing is served: no body can succeed
        return {
            "type": "object",
            "required": ["pack_func"],
            "properties": {"pack_func": CALL_NAME},
        }
    return {"anyOf": branches}


def build_openapi(
    records: Sequence[FunctionRecord],
    *,
    title: str = "GlobalFunc",
    version: str = "0.1.0",
    secured: bool = False,
    extensions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The whole document: fixed endpoints plus one ``/call/<name>`` path per function.

    ``extensions`` are fragments (``paths`` and ``components.schemas``) of extra routes,
    such as the ase protocol's; they add paths and schemas, never replace built-in ones.
    """
    results = _any_of([CallSpec.of(r).response_schema() for r in records])
    paths: dict[str, Any] = {
        "/": {
            "get": operation("Service information", _responses(_OBJECT, 401, 500)),
            "post": operation(
                "Echo the JSON body back (the seed's IndexHandler); an empty body is {}",
                _responses(
                    {
                        "type": "object",
                        "required": ["info", "input_dict"],
                        "properties": {"info": {"type": "string"}, "input_dict": {}},
                    },
                    400,
                    401,
                    413,
                    500,
                ),
                body={},
                body_required=False,
            ),
        },
        "/gfgo/": {
            "post": operation(
                "Call pack_func with args/kwargs; the bare JSON result (the seed's API)",
                _responses(results, *_CALL_CODES),
                body=_gfgo_body(records),
                description="Unknown fields are ignored. `args` go to the first positional "
                "parameters, `kwargs` to the others by name.",
                parameters=[IDEMPOTENCY_KEY],
            )
        },
        "/functions": {
            "get": operation(
                "Registered functions exposed here",
                _responses(_OBJECT, 400, 401, 403, 500, 503),
                parameters=[
                    {
                        "name": "package",
                        "in": "query",
                        "required": False,
                        "description": "only this package (empty: every package)",
                        "schema": {
                            "type": "string",
                            "maxLength": MAX_NAME,
                            "anyOf": [{"const": ""}, {"pattern": PACKAGE_PATTERN}],
                        },
                    }
                ],
            )
        },
        "/functions/{name}": {
            "get": operation(
                "One function: signature, docstring, hash, versions",
                _responses(_OBJECT, 400, 401, 403, 404, 500, 503),
                parameters=[path_param("name", CALL_NAME)],
            )
        },
        "/search": {
            "get": operation(
                "Full-text search over names and docstrings",
                _responses(_OBJECT, 400, 401, 500, 503),
                parameters=[
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_QUERY_CHARS,
                            "pattern": NOT_BLANK,
                        },
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                    },
                ],
            )
        },
        "/healthz": {
            "get": operation("Liveness", _responses(_OBJECT, 500), security=[]),
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **{k: v for k, v in _responses({}, 401, 500).items() if k != "200"},
                },
            )
        },
        "/openapi.json": {
            "get": operation("This document", _responses(_OBJECT, 401, 500, 503)),
        },
    }
    for record in records:
        name = f"{record.package}.{record.name}"
        spec = CallSpec.of(record)
        summary = (record.docstring or "").strip().splitlines()[0] if record.docstring else name
        paths[f"/call/{name}"] = {
            "post": operation(
                summary,
                _responses(
                    {
                        "type": "object",
                        "properties": {"result": spec.response_schema()},
                        "required": ["result"],
                        "additionalProperties": False,
                    },
                    *_CALL_CODES,
                ),
                body=spec.request_schema(),
                # no body is {}: optional only when {} is a valid call
                body_required=bool(spec.request_schema().get("required"))
                or "not" in spec.request_schema(),
                description=f"`{name}{record.signature}`\n\n{record.docstring or ''}".strip(),
                operationId=operation_id("call_", name),
                tags=[record.package],
                parameters=[IDEMPOTENCY_KEY],
            )
        }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Call registered Python functions by name. Arguments are checked "
            "against the annotations in pydantic's strict JSON mode (422 BadArguments names "
            'the parameter). Values JSON has no type for travel as {"__gf__": tag, ...} '
            "(see TaggedValue); those are decoded where the function runs, not checked here.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "examples": ["FunctionNotFound"]},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                },
                "TaggedValue": {
                    "type": "object",
                    "required": ["__gf__"],
                    "properties": {"__gf__": {"type": "string", "examples": ["bytes"]}},
                },
            }
        },
    }
    for fragment in extensions:
        for path, item in fragment.get("paths", {}).items():
            paths.setdefault(path, item)
        schemas = doc["components"]["schemas"]
        for name, schema in fragment.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(name, schema)
    if secured:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
