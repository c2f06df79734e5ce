"""The ``wrapperSchema`` document, built from plain data (no pydantic, no templates).

The loader reads ``meta.route`` (HTTP route(s)) and ``meta.<serviceId>.input/accept``
(which data keys and types go in and out); the ``schemainput``/``schemaoutput`` JSON
schemas describe the ase HTTP body. Two sources feed it:

- :func:`wrapper_schema`: a user ``Wrapper``'s ``requestCls``/``responseCls`` field
  descriptors (ours from :mod:`server.aiges.compat.sdk` or the real SDK's; read by
  attribute, duck-typed);
- :func:`function_schema`: a registry function's signature (see ``function_host``).

The loader parses ``schemainput`` at start-up with a JSON-schema library of its own
dialect and exits on a keyword that does not fit it (a plain ``default`` is a ``switch``
branch there). Everything here emits only :data:`DIALECT_KEYWORDS` (``defaultVal`` for a
default); :func:`dialect_violations` checks a document against that list, and
:func:`standard_json_schema` turns a dialect schema back into ordinary JSON Schema (for
OpenAPI). This module does not validate requests: the loader's validation is off, the
schema's jobs are the route and the documentation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "DATA_TYPE_NAMES",
    "DIALECT_KEYWORDS",
    "dialect_schema",
    "dialect_violations",
    "document",
    "field_descriptors",
    "function_schema",
    "standard_json_schema",
    "wrapper_schema",
]

DIALECT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "enum",
        "items",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "title",
        "description",
        "examples",
        "$schema",
        "oneOf",
        "defaultVal",
    }
)
"""The schema keywords the AIGES loader accepts (docs/aiges-compat.md section 6)."""
DEFAULT_KEYWORD = "defaultVal"
"""The dialect's keyword for a default value (a plain ``default`` is fatal to the loader)."""

DATA_TYPE_NAMES = {0: "text", 1: "audio", 2: "image", 3: "video", 4: "per"}
_HEADER_KEYS = (
    "appid",
    "uid",
    "device_id",
    "device.imei",
    "device.imsi",
    "device.mac",
    "device.other",
    "net.type",
    "net.isp",
    "app.ver",
)
_STATUS = {"type": "integer", "enum": [0, 1, 2, 3]}


def _text_payload(
    encoding: str = "utf8", fmt: str = "plain", compress: str = "raw"
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "encoding": {"type": "string", "enum": sorted({encoding, "utf8", "gb2312"})},
            "compress": {"type": "string", "enum": sorted({compress, "raw", "gzip"})},
            "format": {"type": "string", "enum": sorted({fmt, "plain", "json", "xml"})},
            "status": _STATUS,
            "seq": {"type": "integer", "minimum": 0, "maximum": 9999999},
            "text": {"type": "string", "minLength": 0, "maxLength": 10485760},
        },
    }


def _binary_payload(kind: str, encoding: str) -> dict[str, Any]:
    encodings = {
        "image": ["bmp", "jpeg", "jpg", "png"],
        "audio": ["lame", "opus", "raw", "speex", "speex-wb"],
        "video": ["h264", "mp4"],
    }.get(kind, [])
    props: dict[str, Any] = {
        "encoding": {"type": "string", "enum": sorted({encoding, *encodings} - {""})},
        "status": _STATUS,
        "seq": {"type": "integer", "minimum": 0, "maximum": 9999999},
        kind: {"type": "string", "minLength": 0, "maxLength": 10485760},
    }
    if kind == "audio":
        props.update(
            sample_rate={"type": "integer", "enum": [8000, 16000, 24000, 44100, 48000]},
            channels={"type": "integer", "enum": [1, 2]},
            bit_depth={"type": "integer", "enum": [8, 16, 32]},
            frame_size={"type": "integer", "minimum": 0, "maximum": 1024},
        )
    return {"type": "object", "properties": props}


def payload_schema(
    data_type: int, encoding: str = "", fmt: str = "plain", compress: str = "raw"
) -> dict[str, Any]:
    """JSON schema of one ``payload.<key>`` object for an AIGES data type."""
    kind = DATA_TYPE_NAMES.get(data_type, "text")
    if kind in ("text", "per"):
        return _text_payload(encoding or "utf8", fmt or "plain", compress or "raw")
    return _binary_payload(kind, encoding)


def _accept_parameter(
    encoding: str = "utf8", fmt: str = "plain", compress: str = "raw"
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "encoding": {"type": "string", "enum": sorted({encoding or "utf8", "utf8", "gb2312"})},
            "compress": {"type": "string", "enum": sorted({compress or "raw", "raw", "gzip"})},
            "format": {"type": "string", "enum": sorted({fmt or "plain", "plain", "json", "xml"})},
        },
    }


def document(
    *,
    service_id: str,
    version: str,
    parameters: dict[str, dict[str, Any]],
    required: list[str],
    inputs: dict[str, tuple[int, dict[str, Any]]],
    accepts: dict[str, tuple[int, dict[str, Any]]],
    route: str | list[str] | None = None,
) -> dict[str, Any]:
    """Assemble the schema: ``inputs``/``accepts`` map a data key to (type code, payload schema)."""
    params = dict(parameters)
    for key, (_, payload) in accepts.items():
        props = payload.get("properties", {})
        params.setdefault(
            key,
            _accept_parameter(
                _first(props.get("encoding")),
                _first(props.get("format")),
                _first(props.get("compress")),
            ),
        )
    return {
        "meta": {
            "serviceId": service_id,
            "version": version,
            "service": [service_id],
            "route": route or f"/{version}/private/{service_id}",
            "sub": "ase",
            "call": "atmos",
            "call_type": 0,
            "hosts": "api.xf-yun.com",
            "routeKey": [],
            service_id: {
                "input": {
                    k: {"dataType": DATA_TYPE_NAMES.get(t, "text")} for k, (t, _) in inputs.items()
                },
                "accept": {
                    k: {"dataType": DATA_TYPE_NAMES.get(t, "text")} for k, (t, _) in accepts.items()
                },
            },
        },
        "schemainput": {
            "type": "object",
            "properties": {
                "header": {
                    "type": "object",
                    "properties": {k: {"type": "string", "maxLength": 50} for k in _HEADER_KEYS}
                    | {"status": _STATUS},
                    "required": ["appid"],
                },
                "parameter": {
                    "type": "object",
                    "properties": {
                        service_id: {"type": "object", "properties": params, "required": required}
                    },
                },
                "payload": {"type": "object", "properties": {k: p for k, (_, p) in inputs.items()}},
            },
        },
        "schemaoutput": {
            "type": "object",
            "properties": {
                "payload": {"type": "object", "properties": {k: p for k, (_, p) in accepts.items()}}
            },
        },
    }


def _first(prop: Any) -> str:
    if isinstance(prop, dict) and prop.get("enum"):
        return str(prop["enum"][0])
    return ""


def field_descriptors(holder: Any) -> list[Any]:
    """The field descriptors declared on ``holder`` (class attributes first, then instance)."""
    if holder is None:
        return []
    seen: dict[int, Any] = {}
    sources: list[Iterable[Any]] = []
    cls = holder if isinstance(holder, type) else type(holder)
    for klass in reversed(cls.__mro__):
        sources.append(vars(klass).values())
    if not isinstance(holder, type):
        sources.append(getattr(holder, "__dict__", {}).values())
    for values in sources:
        for value in values:
            if (
                hasattr(value, "key")
                and hasattr(value, "data_type")
                and not isinstance(value, type)
            ):
                seen.setdefault(id(value), value)
    return list(seen.values())


def _param_property(f: Any) -> dict[str, Any]:
    json_type = str(f.data_type)
    prop: dict[str, Any] = {"type": json_type}
    if json_type == "string":
        prop["minLength"] = getattr(f, "min_length", 0)
        prop["maxLength"] = getattr(f, "max_length", 1024)
    elif json_type in ("number", "integer"):
        prop["minimum"] = getattr(f, "minimum", 0)
        prop["maximum"] = getattr(f, "maximum", 100)
    enums = getattr(f, "enums", None)
    if enums:
        prop["enum"] = list(enums)
    default = getattr(f, "default", None) if json_type == "boolean" else getattr(f, "value", None)
    if default is not None and default != "":
        prop[DEFAULT_KEYWORD] = default
    for attr in ("title", "description"):
        text = getattr(f, attr, "")
        if text:
            prop[attr] = text
    return prop


def _payload_entry(f: Any) -> tuple[int, dict[str, Any]]:
    data_type = int(f.data_type)
    return data_type, payload_schema(
        data_type,
        str(getattr(f, "encoding", "") or ""),
        str(getattr(f, "format", "plain") or "plain"),
        str(getattr(f, "compress", "raw") or "raw"),
    )


def wrapper_schema(wrapper: Any, service_id: str = "") -> dict[str, Any]:
    """The schema of a user ``Wrapper`` (class or instance) from its field descriptors."""
    svc = str(getattr(wrapper, "serviceId", "") or service_id or "wrapper")
    version = str(getattr(wrapper, "version", "") or "v1")
    parameters: dict[str, dict[str, Any]] = {}
    required: list[str] = []
    inputs: dict[str, tuple[int, dict[str, Any]]] = {}
    for f in field_descriptors(getattr(wrapper, "requestCls", None)):
        if isinstance(f.data_type, str):
            parameters[f.key] = _param_property(f)
            if getattr(f, "required", False):
                required.append(f.key)
        else:
            inputs[f.key] = _payload_entry(f)
    accepts = {
        f.key: _payload_entry(f)
        for f in field_descriptors(getattr(wrapper, "responseCls", None))
        if not isinstance(f.data_type, str)
    }
    return document(
        service_id=svc,
        version=version,
        parameters=parameters,
        required=required,
        inputs=inputs,
        accepts=accepts,
        route=getattr(wrapper, "route", None),
    )


def function_schema(
    service_id: str,
    parameters: dict[str, dict[str, Any]],
    required: list[str],
    version: str = "v1",
) -> dict[str, Any]:
    """The schema of a registry function: scalar params, a JSON ``kwargs`` payload, a JSON ``result``."""
    return document(
        service_id=service_id,
        version=version,
        parameters=parameters,
        required=required,
        inputs={"kwargs": (0, payload_schema(0, "utf8", "json"))},
        accepts={"result": (0, payload_schema(0, "utf8", "json"))},
    )


def dialect_violations(doc: dict[str, Any]) -> list[str]:
    """One sentence per keyword of ``schemainput``/``schemaoutput`` the loader would refuse."""
    problems: list[str] = []
    for part in ("schemainput", "schemaoutput"):
        if part in doc:
            _check_node(doc[part], part, problems)
    return problems


def _check_node(node: Any, path: str, problems: list[str]) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: a schema must be a JSON object, not {type(node).__name__}")
        return
    for key, value in node.items():
        where = f"{path}.{key}"
        if key not in DIALECT_KEYWORDS:
            hint = f"; use {DEFAULT_KEYWORD!r}" if key == "default" else ""
            problems.append(f"{where}: keyword {key!r} is not in the AIGES loader's dialect{hint}")
        elif key == "properties":
            if not isinstance(value, dict):
                problems.append(f"{where}: must map property names to schemas")
                continue
            for name, sub in value.items():
                _check_node(sub, f"{where}.{name}", problems)
        elif key == "items":
            for i, sub in enumerate(value if isinstance(value, list) else [value]):
                _check_node(sub, f"{where}[{i}]" if isinstance(value, list) else where, problems)
        elif key == "oneOf":
            if not isinstance(value, list):
                problems.append(f"{where}: must be a list of schemas")
                continue
            for i, sub in enumerate(value):
                _check_node(sub, f"{where}[{i}]", problems)
        elif key in ("required", "enum", "examples") and not isinstance(value, list):
            problems.append(f"{where}: must be a list, not {type(value).__name__}")
        elif key == "type" and not isinstance(value, str):
            problems.append(f"{where}: must be one type name, not {value!r}")


def dialect_schema(node: Any) -> Any:
    """A JSON Schema (as :class:`globalfunc.signature.CallSpec` writes it) in the loader's
    dialect: ``default`` becomes ``defaultVal``, ``anyOf`` becomes ``oneOf``, ``const`` a
    one-value ``enum``, ``prefixItems`` a list of ``items``; keywords the dialect lacks
    (``additionalProperties``, ``minItems``, ``format``, ...) are left out, so the result
    is a looser description of the same values, never a fatal one."""
    if isinstance(node, list):
        return [dialect_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default":
            out[DEFAULT_KEYWORD] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out["oneOf"] = [dialect_schema(v) for v in value]
        elif key == "prefixItems" and isinstance(value, list):
            out["items"] = [dialect_schema(v) for v in value]
        elif key == "items" and "prefixItems" not in node:
            out["items"] = dialect_schema(value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: dialect_schema(sub) for name, sub in value.items()}
        elif key == "type" and isinstance(value, list):
            out["oneOf"] = [{"type": t} for t in value]
        elif key in DIALECT_KEYWORDS and key not in ("items", "oneOf", "properties"):
            out[key] = value
    return out


def standard_json_schema(node: Any) -> Any:
    """A copy of a dialect schema as ordinary JSON Schema (``defaultVal`` becomes ``default``)."""
    if isinstance(node, list):
        return [standard_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == DEFAULT_KEYWORD:
            out["default"] = value
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: standard_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "oneOf"):
            out[key] = standard_json_schema(value)
        else:
            out[key] = value
    return out
