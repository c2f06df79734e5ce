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
This module does no I/O and knows nothing about HTTP.
"""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from typing import Any

import orjson

from globalfunc.errors import InvalidRequest, ResultNotSerializable

__all__ = ["TAG", "decode", "dumps", "encode", "loads", "needs_decode"]

TAG = "__gf__"
_TAG_BYTES = b'"__gf__"'
_OPTS = orjson.OPT_NON_STR_KEYS
_SCALARS = (str, int, float, bool, type(None))


def encode(obj: Any, *, tagged: bool = True) -> Any:
    """``obj`` as JSON-ready values (dicts, lists, str, numbers, bool, None), tags added."""
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind is list:
        return [encode(v, tagged=tagged) for v in obj]
    if kind is dict:
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
    if isinstance(obj, frozenset):
        return {TAG: "frozenset", "items": [encode(v, tagged=tagged) for v in obj]}
    if isinstance(obj, set):
        return {TAG: "set", "items": [encode(v, tagged=tagged) for v in obj]}
    if isinstance(obj, PurePath):
        return {TAG: "path", "str": str(obj)}
    if isinstance(obj, complex):
        return {TAG: "complex", "real": obj.real, "imag": obj.imag}
    if type(obj).__module__ == "numpy":
        return _encode_numpy(obj, tagged)
    raise ResultNotSerializable(
        f"a value of type {type(obj).__module__}.{type(obj).__qualname__} cannot be sent as "
        "JSON; return str, numbers, bool, None, list, dict, bytes, datetime, date, Decimal, "
        "set, tuple, Path or numpy arrays",
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
    """``obj`` encoded (see :func:`encode`) and serialized to JSON bytes."""
    kind = type(obj)
    if kind in _SCALARS:  # the common case: no walk
        try:
            return orjson.dumps(obj)
        except orjson.JSONEncodeError as exc:  # ints past 64 bits
            raise ResultNotSerializable(f"{obj!r:.60} cannot be sent as JSON: {exc}") from exc
    try:
        return orjson.dumps(encode(obj, tagged=tagged), option=_OPTS)
    except orjson.JSONEncodeError as exc:
        raise ResultNotSerializable(f"value cannot be sent as JSON: {exc}") from exc


def needs_decode(raw: bytes) -> bool:
    """Whether JSON text may hold tags (a cheap test that lets untagged bodies skip the walk)."""
    return _TAG_BYTES in raw


def loads(raw: bytes | str) -> Any:
    """Parse JSON and decode any tags in it; malformed input raises ``InvalidRequest``."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return decode(value) if needs_decode(raw) else value


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
            return {k: decode(v) for k, v in value["items"].items()}
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
        f"unknown {TAG} tag {tag!r:.60}; known: bytes, datetime, date, time, decimal, set, "
        "frozenset, tuple, path, complex, ndarray, dict"
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
