"""How the MongoDB backend stores a record: the pointer and version documents, and back.

A key's pointer document holds its latest version whole (plus the prefix ``words`` the text
index reads); a version document holds one save or tombstone's metadata and content hash.
:func:`pointer_doc` and :func:`version_doc` build them, :func:`record_of` and
:func:`from_pointer` read records back. Not here: talking to the server, the claim protocol
(:mod:`globalfunc.storage.mongo`).
"""

from __future__ import annotations

from typing import Any

from globalfunc import search
from globalfunc.record import FunctionRecord

__all__ = [
    "NO_WORDS",
    "SEARCHED",
    "Doc",
    "from_pointer",
    "pointer_doc",
    "record_of",
    "version_doc",
    "version_id",
]

Doc = dict[str, Any]
# extra keys that describe where a record was read from, never stored
_TRANSIENT = ("source", "seq")
# what a record is read from (not the prefix words, which are for the index only); an
# inclusion projection, as some wire-compatible servers mishandle exclusions
NO_WORDS: Doc = {"meta": 1, "code": 1, "seq": 1, "deleted": 1, "saved_at": 1}
SEARCHED: Doc = {  # what ranking reads of a pointer
    "package": 1,
    "branch": 1,
    "name": 1,
    "description": 1,
    "docstring": 1,
    "signature": 1,
    "code": 1,
}


def _meta(record: FunctionRecord) -> Doc:
    data = record.to_dict()
    for field in ("code", "deleted", "saved_at"):
        del data[field]
    if data["extra"]:
        data["extra"] = {k: v for k, v in data["extra"].items() if k not in _TRANSIENT}
    return data


def version_id(local: str, seq: int) -> str:
    """The ``_id`` of version ``seq`` of the key whose pointer ``_id`` is ``local``."""
    return f"{local}#{seq:012d}"


def record_of(meta: Doc, code: str, seq: int, deleted: bool, saved_at: float) -> FunctionRecord:
    """The record a version's stored parts describe, tagged with its version number."""
    data = dict(meta)
    data["code"] = code
    data["deleted"] = deleted
    data["saved_at"] = saved_at
    extra = dict(data.get("extra") or {})
    extra["seq"] = seq
    data["extra"] = extra
    return FunctionRecord.from_dict(data)


def from_pointer(doc: Doc) -> FunctionRecord:
    """The latest record of a pointer document (read with at least :data:`NO_WORDS`)."""
    return record_of(doc["meta"], doc["code"], doc["seq"], doc["deleted"], doc["saved_at"])


def pointer_doc(record: FunctionRecord, local: str, seq: int) -> Doc:
    """The pointer document that makes ``record`` version ``seq`` of ``local``."""
    doc = search.doc_of(record)
    return {
        "_id": local,
        "tier2": record.storage_key.tier2,
        "package": record.package,
        "branch": record.branch,
        "name": record.name,
        "docstring": record.docstring or "",
        "signature": record.signature,
        "code": record.code,
        "description": doc.description,
        "words": " ".join(search.index_words(doc)),
        "sha256": record.sha256,
        "seq": seq,
        "deleted": record.deleted,
        "saved_at": record.saved_at,
        "meta": _meta(record),
    }


def version_doc(pointer: Doc) -> Doc:
    """The version document (the history's entry) for a pointer document."""
    return {
        "_id": version_id(pointer["_id"], pointer["seq"]),
        "k": pointer["_id"],
        "seq": pointer["seq"],
        "sha256": pointer["sha256"],
        "deleted": pointer["deleted"],
        "saved_at": pointer["saved_at"],
        "meta": pointer["meta"],
    }
