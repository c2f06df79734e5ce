"""The embedded store's file: its SQL layout and how a record's parts are encoded in rows.

The layout itself (tables, the index, what each column holds) is described in
:mod:`globalfunc.storage.sqlite`, which reads and writes it; this module holds the DDL,
the shared SELECTs, the encoding of a content's metadata (one JSON array a content), the
hashes as raw bytes, what the full-text index is made from, and the private creation of
the file. No connection is opened here.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from globalfunc.errors import StorageError
from globalfunc.record import FunctionInfo, Param

__all__ = [
    "ANY_VERSION",
    "COLUMNS",
    "CONTENT_FIELDS",
    "FTS",
    "INDEXED",
    "LATEST",
    "LAYOUT",
    "SCHEMA",
    "content_fields",
    "content_meta",
    "create_private",
    "extra_description",
    "index_docstring",
    "indexed",
    "pack",
    "searched_fields",
    "unpack",
]

LAYOUT = 4  # PRAGMA user_version of the current layout

SCHEMA = """
CREATE TABLE blobs (
    id INTEGER PRIMARY KEY,
    sha256 BLOB NOT NULL UNIQUE,
    code TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE TABLE keys (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    tier1 TEXT NOT NULL,
    package TEXT NOT NULL,
    branch TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE TABLE versions (
    id INTEGER PRIMARY KEY,
    key_id INTEGER NOT NULL,
    blob_id INTEGER NOT NULL,
    saved_at REAL NOT NULL,
    deleted INTEGER NOT NULL,
    git_commit TEXT,
    mtime_ns INTEGER NOT NULL,
    modified_time TEXT NOT NULL,
    file_name TEXT NOT NULL,
    extra TEXT,
    own_meta TEXT,
    dirty INTEGER NOT NULL
);
CREATE INDEX versions_by_key ON versions (key_id, id);
"""
FTS = "CREATE VIRTUAL TABLE fts USING fts5 (name, docstring, signature, code, content='')"


# What the code determines, stored once per content in ``blobs.meta`` (in this order).
CONTENT_FIELDS = (
    "md5",
    "size",
    "line_count",
    "signature",
    "params",
    "returns",
    "docstring",
    "imports",
    "lineno",
    "is_async",
    "fingerprint",
)


def content_meta(record: FunctionInfo) -> str:
    """The record's content metadata as stored: a JSON array in ``CONTENT_FIELDS`` order.

    An array of tuples, not an object of dicts: 456 bytes instead of 666 for a typical
    function, and half the work to build.
    """
    return orjson.dumps(
        (
            record.md5,
            record.size,
            record.line_count,
            record.signature,
            [(p.name, p.kind, p.default, p.annotation) for p in record.params],
            record.returns,
            record.docstring,
            record.imports,
            record.lineno,
            record.is_async,
            record.fingerprint,
        )
    ).decode()


def content_fields(meta: str | bytes) -> dict[str, Any]:
    """Stored content metadata back as record fields (``params`` as :class:`Param`)."""
    data = orjson.loads(meta)
    if isinstance(data, list) and len(data) == len(CONTENT_FIELDS) - 1:
        data.append("")  # stored before fingerprints: computed when needed
    try:
        values = dict(zip(CONTENT_FIELDS, data, strict=True))
        values["params"] = tuple(Param(*p) for p in values["params"])
        values["imports"] = tuple(values["imports"])
    except (TypeError, ValueError, KeyError) as exc:
        raise StorageError(f"stored content metadata is malformed: {exc}") from exc
    return values


_SIGNATURE = CONTENT_FIELDS.index("signature")
_DOCSTRING = CONTENT_FIELDS.index("docstring")


def searched_fields(meta: str | bytes) -> tuple[str, str]:
    """The (signature, docstring) of stored content metadata: what a search scores, read
    without building the rest (a third of a candidate's cost)."""
    data = orjson.loads(meta)
    if not isinstance(data, list) or len(data) < _DOCSTRING + 1:
        return content_fields(meta)["signature"] or "", ""  # raises StorageError
    return data[_SIGNATURE] or "", data[_DOCSTRING] or ""


# Python's sqlite3 binds str, int, float and bytearray directly but sends None and bytes
# through its adaptation protocol, about 0.8 us a value: hashes are bound as bytearray,
# and NULLs in the per-version row as 0, turned back by ``nullif(?, 0)``.


def pack(sha256: str) -> bytearray | str:
    """A hex sha256 as its 32 bytes (anything else is stored as given)."""
    try:
        raw = bytearray.fromhex(sha256)
    except (TypeError, ValueError):
        return sha256
    return raw if len(raw) == 32 and raw.hex() == sha256 else sha256


def unpack(sha256: bytes | bytearray | str) -> str:
    return sha256 if isinstance(sha256, str) else sha256.hex()


# key, tier1, package, branch, sha256, code, meta, own_meta, saved_at, deleted, git_commit,
# mtime_ns, modified_time, file_name, extra, dirty: what ``_records`` turns into records
COLUMNS = (
    "k.key, k.tier1, k.package, k.branch, b.sha256, b.code, b.meta, v.own_meta, v.saved_at, "
    "v.deleted, v.git_commit, v.mtime_ns, v.modified_time, v.file_name, v.extra, v.dirty "
)
LATEST = (  # each key's newest version
    f"SELECT {COLUMNS} FROM keys k JOIN versions v ON v.id = k.version_id "
    "JOIN blobs b ON b.id = v.blob_id "
)
ANY_VERSION = (  # any version of a key
    f"SELECT {COLUMNS} FROM keys k JOIN versions v ON v.key_id = k.id "
    "JOIN blobs b ON b.id = v.blob_id "
)
INDEXED = (  # what a live key's index entry was made from
    "SELECT k.id, k.key, b.meta, v.own_meta, b.code, v.extra FROM keys k "
    "JOIN versions v ON v.id = k.version_id JOIN blobs b ON b.id = v.blob_id "
)


def indexed(
    key: str, meta: str, own_meta: str | None, code: str, extra: str | None
) -> tuple[str, ...]:
    """The (name, docstring, signature, code) a version was indexed with."""
    data = content_fields(own_meta or meta)
    docstring = index_docstring(data["docstring"], extra_description(extra))
    return key.rpartition(".")[2], docstring, data["signature"] or "", code


def extra_description(extra: str | int | None) -> str | None:
    """The description in a version's stored ``extra`` JSON (``None``: none given)."""
    if not extra or not isinstance(extra, str) or '"description"' not in extra:
        return None
    value = orjson.loads(extra).get("description")
    return value if isinstance(value, str) else None


def index_docstring(docstring: str | None, description: str | None) -> str:
    """The index's ``docstring`` column also holds the description: the index only narrows
    candidates (``globalfunc.search`` ranks them), so one column is enough."""
    return f"{docstring or ''}\n{description}" if description else docstring or ""


def create_private(path: str) -> None:
    """Create the database file empty, readable by its owner only, if it does not exist.

    SQLite would create it ``0644`` less the umask, and its ``-wal`` and ``-shm`` files
    with the database file's mode: every function ever saved, exposed or not, readable by
    any user (an isolated worker runs as ``nobody``). An existing file keeps its mode. An
    empty file is an empty database to SQLite.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # it exists, or cannot be made: connecting says which
    os.close(fd)
