"""JSON translation of call arguments and results, shared by the HTTP server and the client.

The wire format is plain JSON. Values JSON has no type for travel as a small tagged
object ``{"__gf__": <tag>, ...}``:

=============  ===============================================================
``bytes``      ``{"__gf__": "bytes", "b64": "<base64>"}`` (also bytearray/memoryview)
``datetime``   ``{"__gf__": "datetime", "iso": "2024-02-15T11:11:11+00:00"}``
``date``       ``{"__gf__": "date", "iso": "2024-02-15"}``
``time``       ``{"__gf__": "time", "iso": "11:11:11"}``
``Decimal``    ``{"__gf__": "decimal", "str": "1.10"}``
``set``        ``{"__gf__": "set", "items": [...]}`` (``frozenset``: tag ``frozenset``)
``tuple``      ``{"__gf__": "tuple", "items": [...]}`` (only when ``tagged=True``)
``Path``       ``{"__gf__": "path", "str": "/tmp/x"}``
``ndarray``    ``{"__gf__": "ndarray", "dtype": "<f8", "shape": [2], "b64": ...}``
``complex``    ``{"__gf__": "complex", "real": 1.0, "imag": 2.0}``
a dict that    ``{"__gf__": "dict", "items": {...}}`` so user data can never be
has "__gf__"   mistaken for a tag
=============  ===============================================================

``encode`` is used on results (server) and arguments (client); ``decode`` on arguments
(server) and results (client), so both directions round-trip. With ``tagged=False``
tuples become plain lists, as the seed's ``json.dumps`` wrote them (the ``/gfgo/``
endpoint's default). numpy is optional: arrays are recognised without importing it, and
decoding one needs it installed.

Anything else raises :class:`~globalfunc.errors.ResultNotSerializable` naming the type
(the server's case); the client turns that into :class:`~globalfunc.errors.InvalidRequest`.

Numbers are exact both ways. orjson, the fast path, reads an integer past 64 bits as a
float (and refuses one of more than 308 digits as infinite) and cannot write one, so
:func:`loads` parses again with the standard library when the document holds an integral
float of 2**63 or more (which only such a literal or a huge float literal gives) or
orjson found a number infinite as a double (a float literal such as ``1e400`` is still
refused), and :func:`dumps` falls back to the standard library when
orjson refuses an integer. A float NaN or Infinity (which orjson would silently write as
``null``) raises :class:`~globalfunc.errors.ResultNotFinite` naming where it was. A
document nested deeper than ``max_depth`` raises
:class:`~globalfunc.errors.NestingTooDeep` (the server passes ``GF_MAX_JSON_DEPTH``).

This module does no I/O and knows nothing about HTTP.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from typing import Any

import orjson

from globalfunc.errors import (
    InvalidRequest,
    NestingTooDeep,
    ResultNotFinite,
    ResultNotSerializable,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "TAG",
    "decode",
    "dumps",
    "dumps_encoded",
    "encode",
    "loads",
    "needs_decode",
]

DEFAULT_MAX_DEPTH = 64
"""The nesting the HTTP server accepts by default (``GF_MAX_JSON_DEPTH``)."""

TAG = "__gf__"
_TAG_BYTES = b'"__gf__"'
_OPTS = orjson.OPT_NON_STR_KEYS
_SCALARS = (str, int, float, bool, type(None))
_INT64 = 2.0**63  # orjson reads integer literals from here on as floats
_PARSER_DEPTH = 1024  # orjson's own nesting limit
_INFINITE = "infinity when parsed as double"  # orjson's refusal of a number past 1e308


class _NonFinite(Exception):
    """Internal: a NaN or Infinity met while encoding; :func:`dumps` says where."""


def encode(obj: Any, *, tagged: bool = True) -> Any:
    """``obj`` as JSON-ready values (dicts, lists, str, numbers, bool, None), tags added."""
    kind = type(obj)
    if kind is float:
        if math.isfinite(obj):
            return obj
        raise _NonFinite(obj)
    if kind in _SCALARS:
        return obj
    if kind is list:
        return [encode(v, tagged=tagged) for v in obj]
    if kind is dict:
        if tagged and any(type(k) is not str for k in obj):  # JSON keys are strings: keep them
            return {TAG: "dict", "pairs": [[encode(k), encode(v)] for k, v in obj.items()]}
        out = {_key(k): encode(v, tagged=tagged) for k, v in obj.items()}
        return {TAG: "dict", "items": out} if TAG in out else out
    return _encode_other(obj, tagged)


def _key(key: Any) -> Any:
    if isinstance(key, _SCALARS):
        return key
    raise ResultNotSerializable(
        f"dict key of type {type(key).__module__}.{type(key).__qualname__} cannot be a JSON "
        "object key; use str, int, float, bool or None keys",
        type=type(key).__qualname__,
    )


def _encode_other(obj: Any, tagged: bool) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise _NonFinite(obj)
    if isinstance(obj, bool | int | float | str):  # subclasses (IntEnum, ...)
        return obj
    if isinstance(obj, tuple):
        items = [encode(v, tagged=tagged) for v in obj]
        return {TAG: "tuple", "items": items} if tagged else items
    if isinstance(obj, list):
        return [encode(v, tagged=tagged) for v in obj]
    if isinstance(obj, dict):
        return encode(dict(obj), tagged=tagged)
    if isinstance(obj, bytes | bytearray | memoryview):
        return {TAG: "bytes", "b64": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, dt.datetime):
        return {TAG: "datetime", "iso": obj.isoformat()}
    if isinstance(obj, dt.date):
        return {TAG: "date", "iso": obj.isoformat()}
    if isinstance(obj, dt.time):
        return {TAG: "time", "iso": obj.isoformat()}
    if isinstance(obj, Decimal):
        return {TAG: "decimal", "str": str(obj)}
    if isinstance(obj, dt.timedelta):
        return {
            TAG: "timedelta",
            "days": obj.days,
            "seconds": obj.seconds,
            "microseconds": obj.microseconds,
        }
    if isinstance(obj, uuid.UUID):
        return {TAG: "uuid", "str": str(obj)}
    if isinstance(obj, frozenset):
        return {TAG: "frozenset", "items": [encode(v, tagged=tagged) for v in obj]}
    if isinstance(obj, set):
        return {TAG: "set", "items": [encode(v, tagged=tagged) for v in obj]}
    if isinstance(obj, PurePath):
        return {TAG: "path", "str": str(obj)}
    if isinstance(obj, complex):
        return {TAG: "complex", "real": encode(obj.real), "imag": encode(obj.imag)}
    if type(obj).__module__ == "numpy":
        return _encode_numpy(obj, tagged)
    raise ResultNotSerializable(
        f"a value of type {type(obj).__module__}.{type(obj).__qualname__} cannot be sent as "
        "JSON; return str, numbers, bool, None, list, dict, bytes, datetime, date, timedelta, "
        "Decimal, UUID, set, tuple, Path or numpy arrays",
        type=type(obj).__qualname__,
    )


def _encode_numpy(obj: Any, tagged: bool) -> Any:
    if type(obj).__name__ == "ndarray":
        if obj.dtype.hasobject:
            return encode(obj.tolist(), tagged=tagged)
        arr = obj if obj.flags.c_contiguous else obj.copy(order="C")
        return {
            TAG: "ndarray",
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
            "b64": base64.b64encode(arr.tobytes()).decode("ascii"),
        }
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # numpy scalar
        return encode(obj.item(), tagged=tagged)
    raise ResultNotSerializable(
        f"a value of type numpy.{type(obj).__qualname__} cannot be sent as JSON",
        type=type(obj).__qualname__,
    )


def dumps(obj: Any, *, tagged: bool = True) -> bytes:
    """``obj`` encoded (see :func:`encode`) and serialized to JSON bytes.

    Integers of any size are written exactly; a float NaN or Infinity anywhere raises
    :class:`ResultNotFinite` naming where it is.
    """
    kind = type(obj)
    if kind in _SCALARS:  # the common case: no walk
        if kind is float and not math.isfinite(obj):
            raise _not_finite(obj, obj)
        try:
            return orjson.dumps(obj)
        except orjson.JSONEncodeError:
            if kind is int:  # past 64 bits
                return str(obj).encode("ascii")
            return _std_dumps(obj)
    try:
        encoded = encode(obj, tagged=tagged)
    except _NonFinite as exc:
        raise _not_finite(obj, exc.args[0]) from None
    except RecursionError:
        raise ResultNotSerializable(
            "value is nested too deeply to be sent as JSON; return a flatter structure"
        ) from None
    return dumps_encoded(encoded)


def dumps_encoded(value: Any) -> bytes:
    """JSON bytes of a value already JSON-ready (the output of :func:`encode`).

    orjson writes it; integers past 64 bits are written by the standard library.
    """
    try:
        return orjson.dumps(value, option=_OPTS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" in str(exc):
            return _std_dumps(value)
        raise ResultNotSerializable(f"value cannot be sent as JSON: {exc}") from exc


def _std_dumps(value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise ResultNotSerializable(f"value cannot be sent as JSON: {exc}") from exc


def _not_finite(root: Any, value: float) -> ResultNotFinite:
    where = _find_non_finite(root, "result", 0)
    what = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    place = f" at {where}" if where else ""
    return ResultNotFinite(
        f"the result holds {what}{place}; JSON has no NaN or Infinity: return None, a "
        "string, or a finite number instead",
        value=what,
        where=where or "result",
    )


def _find_non_finite(obj: Any, path: str, depth: int) -> str | None:
    """Where the first NaN/Infinity in ``obj`` is, as ``result['a'][2]``."""
    if depth > 200:
        return None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else path
    if isinstance(obj, complex):
        return None if math.isfinite(obj.real) and math.isfinite(obj.imag) else path
    items: Any
    if isinstance(obj, dict):
        items = ((f"{path}[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
    elif type(obj).__module__ == "numpy" and hasattr(obj, "item") and hasattr(obj, "dtype"):
        return _find_non_finite(obj.item(), path, depth + 1) if obj.shape == () else None
    else:
        return None
    for sub, value in items:
        found = _find_non_finite(value, sub, depth + 1)
        if found is not None:
            return found
    return None


def needs_decode(raw: bytes) -> bool:
    """Whether JSON text may hold tags (a cheap test that lets untagged bodies skip the walk)."""
    return _TAG_BYTES in raw


def loads(raw: bytes | str, *, max_depth: int | None = None, decode_tags: bool = True) -> Any:
    """Parse JSON and decode any tags in it; malformed input raises ``InvalidRequest``.

    Integers of any size come back exact. With ``max_depth``, a document nested deeper
    (``[[1]]`` is depth 2) raises :class:`NestingTooDeep` before anything else sees it.
    ``decode_tags=False`` leaves tagged objects as they are, for a server that passes
    arguments on to the process that runs the function (which decodes them once).
    """
    limit = _PARSER_DEPTH if max_depth is None else max_depth
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise _too_deep(limit) from None
        if _INFINITE in str(exc):  # an integer of 309+ digits, or a float literal past 1e308
            value = _std_loads(raw, limit)
            if type(value) is dict or type(value) is list:
                _walk(value, limit)  # the nesting check orjson did not get to
            return _decoded(raw, value, decode_tags)
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    kind = type(value)
    if ((kind is dict or kind is list) and _walk(value, limit)) or (kind is float and _big(value)):
        value = _std_loads(raw, limit)
    return _decoded(raw, value, decode_tags)


def _decoded(raw: bytes | str, value: Any, decode_tags: bool) -> Any:
    """``value`` (parsed from ``raw``) with its tags decoded, when asked and it may hold any."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return decode(value) if decode_tags and needs_decode(raw) else value


def _walk(root: dict[str, Any] | list[Any], max_depth: int) -> bool:
    """Check the nesting; whether any float may have been a 64-bit-plus integer literal."""
    suspect = False
    stack: list[tuple[Any, int]] = [(root, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > max_depth:
            raise _too_deep(max_depth)
        for item in node.values() if type(node) is dict else node:
            kind = type(item)
            if kind is float:
                if _big(item):
                    suspect = True
            elif kind is dict or kind is list:
                push((item, depth + 1))
    return suspect


def _big(value: float) -> bool:
    return (value >= _INT64 or value <= -_INT64) and value.is_integer()


def _std_loads(raw: bytes | str, max_depth: int) -> Any:
    """The slow, exact parse: integers stay ``int`` at any size; a float literal that is
    infinite as a double (``1e400``) is refused, as orjson refuses it."""
    try:
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError as exc:  # UnicodeDecodeError and int digit limits are ValueErrors too
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]!r} is infinity when parsed as double")
    return value


def _too_deep(max_depth: int) -> NestingTooDeep:
    return NestingTooDeep(
        f"JSON body is nested more than {max_depth} levels deep; send a flatter structure "
        "(the server's limit is GF_MAX_JSON_DEPTH)",
        limit=max_depth,
    )


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`: tagged objects become Python values again."""
    kind = type(value)
    if kind is list:
        return [decode(v) for v in value]
    if kind is dict:
        tag = value.get(TAG)
        if tag is None:
            return {k: decode(v) for k, v in value.items()}
        return _decode_tag(tag, value)
    return value


def _decode_tag(tag: Any, value: dict[str, Any]) -> Any:
    try:
        if tag == "dict":
            if "pairs" in value:
                return {decode(k): decode(v) for k, v in value["pairs"]}
            return {k: decode(v) for k, v in value["items"].items()}
        if tag == "timedelta":
            return dt.timedelta(
                days=value["days"], seconds=value["seconds"], microseconds=value["microseconds"]
            )
        if tag == "uuid":
            return uuid.UUID(value["str"])
        if tag == "tuple":
            return tuple(decode(v) for v in value["items"])
        if tag == "bytes":
            return base64.b64decode(value["b64"], validate=True)
        if tag == "datetime":
            return dt.datetime.fromisoformat(value["iso"])
        if tag == "date":
            return dt.date.fromisoformat(value["iso"])
        if tag == "time":
            return dt.time.fromisoformat(value["iso"])
        if tag == "decimal":
            return Decimal(value["str"])
        if tag == "set":
            return {decode(v) for v in value["items"]}
        if tag == "frozenset":
            return frozenset(decode(v) for v in value["items"])
        if tag == "path":
            from pathlib import Path

            return Path(value["str"])
        if tag == "complex":
            return complex(float(value["real"]), float(value["imag"]))
        if tag == "ndarray":
            return _decode_ndarray(value)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        raise InvalidRequest(f"malformed {TAG} value {tag!r}: {exc!r:.200}") from exc
    raise InvalidRequest(
        f"unknown {TAG} tag {tag!r:.60}; known: bytes, datetime, date, time, timedelta, "
        "decimal, uuid, set, frozenset, tuple, path, complex, ndarray, dict"
    )


def _decode_ndarray(value: dict[str, Any]) -> Any:
    try:
        import numpy as np
    except ImportError:
        raise InvalidRequest(
            "a numpy array was sent but numpy is not installed here; pip install numpy"
        ) from None
    dtype = np.dtype(value["dtype"])
    if dtype.hasobject:
        raise InvalidRequest("object arrays cannot be sent; send a list instead")
    shape = tuple(int(n) for n in value["shape"])
    data = base64.b64decode(value["b64"], validate=True)
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
