"""The OpenAPI 3.1 document of the HTTP server, with a kwargs schema for every function.

Schemas come from the registered signature (annotations and defaults as source text, as
the scanner recorded them), never from importing the code. Annotations we can map
(``int``, ``float``, ``str``, ``bool``, ``list[...]``, ``dict[...]``, ``X | None``,
``Optional[X]``, ...) become JSON Schema types; anything else is left open (``{}``).
Routes added with ``make_app(extra_routes=...)`` describe themselves through fragments
passed as ``extensions`` (the ase protocol's come from :func:`server.aiges.ase_http.ase_openapi`),
built with this module's operation helpers (:func:`operation`, :func:`responses`, ...), so
there is one way to write an operation.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

from globalfunc.record import FunctionRecord, Param

_SIMPLE: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "complex": {"type": "object"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "None": {"type": "null"},
    "NoneType": {"type": "null"},
    "bytes": {"$ref": "#/components/schemas/TaggedValue"},
    "list": {"type": "array"},
    "List": {"type": "array"},
    "Sequence": {"type": "array"},
    "Iterable": {"type": "array"},
    "tuple": {"type": "array"},
    "Tuple": {"type": "array"},
    "set": {"type": "array"},
    "dict": {"type": "object"},
    "Dict": {"type": "object"},
    "Mapping": {"type": "object"},
    "Any": {},
    "object": {},
}
_OPEN: dict[str, Any] = {}


def annotation_schema(text: str | None) -> dict[str, Any]:
    """A JSON Schema for an annotation written as source text (``{}`` when unknown)."""
    if not text:
        return {}
    try:
        node = ast.parse(text.strip().strip("'\""), mode="eval").body
    except SyntaxError:
        return {}
    return _node_schema(node)


def _node_schema(node: ast.expr) -> dict[str, Any]:
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        return dict(_SIMPLE.get(name, _OPEN))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right])
    if isinstance(node, ast.Subscript):
        base = (
            node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        )
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Optional":
            return _union([*args, ast.Constant(None)])
        if base == "Union":
            return _union(args)
        if base == "Literal":
            values = [a.value for a in args if isinstance(a, ast.Constant)]
            return {"enum": values}
        schema = dict(_SIMPLE.get(base, _OPEN))
        if schema.get("type") == "array" and len(args) == 1:
            schema["items"] = _node_schema(args[0])
        elif schema.get("type") == "object" and len(args) == 2:
            schema["additionalProperties"] = _node_schema(args[1])
        return schema
    return {}


def _union(nodes: Sequence[ast.expr]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for n in nodes:
        s = _node_schema(n)
        flat.extend(s.get("anyOf", [s]))
    if any(not s for s in flat):
        return {}
    return {"anyOf": flat}


def _default(text: str | None) -> tuple[bool, Any]:
    if text is None:
        return False, None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None
    if isinstance(value, str | int | float | bool | type(None) | list | dict):
        return True, value
    return False, None


def kwargs_schema(record: FunctionRecord) -> dict[str, Any]:
    """The JSON Schema of the body of ``POST /call/<name>`` for this function."""
    props: dict[str, Any] = {}
    required: list[str] = []
    extra = False
    for p in record.params:
        if p.kind == "var_keyword":
            extra = True
            continue
        if p.kind in ("var_positional", "positional_only"):
            continue
        props[p.name] = _param_schema(p)
        if p.required:
            required.append(p.name)
    schema: dict[str, Any] = {
        "type": "object",
        "title": f"{record.package}.{record.name} kwargs",
        "properties": props,
        "additionalProperties": extra,
    }
    if required:
        schema["required"] = required
    return schema


def _param_schema(p: Param) -> dict[str, Any]:
    schema = annotation_schema(p.annotation)
    has, value = _default(p.default)
    if has:
        schema["default"] = value
    if p.annotation:
        schema["description"] = f"annotation: {p.annotation}"
    return schema


# -- the operation builder (shared with the ase routes, server.aiges.ase_http.openapi) ----------
SCHEMAS = "#/components/schemas/"


def schema_ref(name: str) -> dict[str, Any]:
    """A reference to ``components.schemas.<name>``."""
    return {"$ref": SCHEMAS + name}


def json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A ``content`` object holding one ``application/json`` schema."""
    return {"application/json": {"schema": schema}}


def path_param(name: str) -> dict[str, Any]:
    """A required string path parameter."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


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
_DESCRIPTIONS = {
    400: "Invalid request, name or arguments",
    401: "Missing or wrong bearer token",
    403: "Package not exposed",
    404: "No such registered function",
    413: "Body too large",
    500: "The function raised, crashed, or its result is not JSON",
    504: "The function ran past its timeout",
}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    return responses(ok, {code: _DESCRIPTIONS[code] for code in codes}, _ERROR)


_CALL_CODES = (400, 401, 403, 404, 413, 500, 504)


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
    gfgo_body = {
        "type": "object",
        "required": ["pack_func"],
        "properties": {
            "pack_func": {"type": "string", "examples": ["Base.inverse_time_str"]},
            "args": {"type": "array", "default": []},
            "kwargs": {"type": "object", "default": {}},
        },
    }
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "Service information",
                "responses": _responses({"type": "object"}, 401),
            },
            "post": {
                "summary": "Echo the JSON body back (the seed's IndexHandler)",
                "requestBody": {"content": {"application/json": {"schema": {}}}},
                "responses": _responses({"type": "object"}, 400, 401, 413),
            },
        },
        "/gfgo/": {
            "post": operation(
                "Call pack_func with args/kwargs; the bare JSON result (the seed's API)",
                _responses({}, *_CALL_CODES),
                body=gfgo_body,
            )
        },
        "/functions": {
            "get": {
                "summary": "Registered functions exposed here",
                "parameters": [
                    {
                        "name": "package",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": _responses({"type": "object"}, 400, 401, 403),
            }
        },
        "/functions/{name}": {
            "get": {
                "summary": "One function: signature, docstring, hash, versions",
                "parameters": [path_param("name")],
                "responses": _responses({"type": "object"}, 400, 401, 403, 404),
            }
        },
        "/search": {
            "get": {
                "summary": "Full-text search over names and docstrings",
                "parameters": [
                    {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                ],
                "responses": _responses({"type": "object"}, 400, 401),
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": _responses({"type": "object"}),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": _responses({"type": "object"}, 401)}
        },
    }
    for record in records:
        name = f"{record.package}.{record.name}"
        summary = (record.docstring or "").strip().splitlines()[0] if record.docstring else name
        paths[f"/call/{name}"] = {
            "post": operation(
                summary,
                _responses(
                    {"type": "object", "properties": {"result": {}}, "required": ["result"]},
                    *_CALL_CODES,
                ),
                body=kwargs_schema(record),
                body_required=False,
                description=f"`{name}{record.signature}`\n\n{record.docstring or ''}".strip(),
                operationId=operation_id("call_", name),
                tags=[record.package],
            )
        }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Call registered Python functions by name. Values JSON has no "
            'type for travel as {"__gf__": tag, ...} (see TaggedValue).',
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
