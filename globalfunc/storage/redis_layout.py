"""How the Redis backend stores a record: the JSON of its metadata and the latest-version value.

``encode_meta`` is what a version's metadata is stored as (everything but the code and
read-time tags); a key's latest value is a fixed-size header (sha256, tombstone flag,
version number) followed by the metadata and the code, read back by ``decode_latest``.
Not here: talking to Redis (:mod:`globalfunc.storage.redis`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from globalfunc.errors import StorageError
from globalfunc.record import FunctionRecord, Param

__all__ = ["HEADER_SIZE", "TRANSIENT", "decode_latest", "decode_record", "encode_meta", "header"]

HEADER_SIZE = 77  # sha256 hex (64) + tombstone flag (1) + version number (12)
# extra keys that describe where a record was read from, never stored
TRANSIENT = ("source", "seq")


def encode_meta(record: FunctionRecord) -> bytes:
    """The record's metadata as JSON: everything but the code and read-time ``extra`` tags."""
    data = record.to_dict()
    del data["code"]
    del data["deleted"]
    if data["extra"]:
        data["extra"] = {k: v for k, v in data["extra"].items() if k not in TRANSIENT}
    return orjson.dumps(data)


def header(sha256: str, deleted: bool, seq: int) -> bytes:
    return f"{sha256}{'1' if deleted else '0'}{seq:012d}".encode()


_FIELDS = frozenset(f.name for f in fields(FunctionRecord))
_PARAMS: dict[tuple[Any, ...], Param] = {}  # Params are immutable: decode each shape once
_set = object.__setattr__


def _param(p: dict[str, Any]) -> Param:
    shape = (p["name"], p["kind"], p.get("default"), p.get("annotation"))
    param = _PARAMS.get(shape)
    if param is None:
        param = Param(*shape)
        if len(_PARAMS) < 100_000:
            _PARAMS[shape] = param
    return param


def decode_record(
    meta: bytes, code: str, deleted: bool, seq: int, source: str | None
) -> FunctionRecord:
    data: dict[str, Any] = orjson.loads(meta)
    data["code"] = code
    data["deleted"] = deleted
    extra = data["extra"] if data.get("extra") else {}
    extra["seq"] = seq
    if source:
        extra["source"] = source
    data["extra"] = extra
    if data.keys() != _FIELDS:
        return FunctionRecord.from_dict(data)  # written by an older or newer version
    data["params"] = tuple([_param(p) for p in data["params"]])
    data["imports"] = tuple(data["imports"])
    # Reads are the cache's hot path, and the frozen dataclass's __init__ is half the
    # cost of a cache hit; the fields are exactly the record's, written by encode_meta,
    # so set them directly (FunctionRecord has no __post_init__ to skip).
    record = object.__new__(FunctionRecord)
    for name, value in data.items():
        _set(record, name, value)
    return record


def decode_latest(value: bytes, source: str | None = None) -> FunctionRecord:
    """Turn a ``latest`` value (header, meta, newline, code) back into a record."""
    try:
        nl = value.index(b"\n", HEADER_SIZE)
        return decode_record(
            value[HEADER_SIZE:nl],
            value[nl + 1 :].decode("utf-8"),
            value[64:65] == b"1",
            int(value[65:HEADER_SIZE]),
            source,
        )
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise StorageError(
            f"a cached record is malformed ({exc}); evict it and read again"
        ) from exc
