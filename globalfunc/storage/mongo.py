"""The MongoDB backend (pymongo): the durable copy, every version kept.

Per space (tier1) three collections in the URL's database (default ``globalfunc``):

Collection names use only letters, digits and ``_`` (some wire-compatible servers allow
nothing else): a ``-`` in tier1 is written ``_x2d_``.

- ``<tier1>``           one pointer document per key (``_id`` = ``<tier2>.<name>``) holding
                        the latest version whole (metadata, code, version number, tombstone
                        flag); ``list``/``get``/``search`` read only this; it carries the
                        text index.
- ``<tier1>__versions`` append-only, one document per save or tombstone, ``_id`` =
                        ``<tier2>.<name>#<version number>``; history reads these.
- ``<tier1>__content``  the code once per (tier2, name, sha256), unique on those three.

Saving the same content again after a revert or a delete is a new version (a new
version document pointing at the existing content), never an overwrite.

Concurrency without transactions: a writer reads the pointer (version ``n``), decides
"unchanged = no-op" against it, then claims version ``n + 1`` by inserting its version
document; the ``_id`` makes the claim exclusive, so of two writers one wins and the
other re-reads and retries. The winner then moves the pointer from ``n`` to ``n + 1``.
A writer that finds a claimed version whose pointer never moved (its writer died or is
slow) moves the pointer forward itself before retrying, so a crash never wedges a key.
``put`` does each phase for the whole batch with one ``bulk_write``; a batch is not
atomic across records (MongoDB would need a replica-set transaction for that).

Search narrows with a ``$text`` index over each pointer's ``words``: every prefix of
every word of its searchable fields (:func:`globalfunc.search.index_words`), so a
whole-word text index answers prefix queries (``pick`` finds ``to_pickle``), one query
per term; :mod:`globalfunc.search` ranks the candidates. Where the server has no text
search (mongomock) it scans the space's latest records instead, decided once per space
at run time (a server that refuses to create the index again because it exists is
probed with a query). Nothing here relies on ``server_info()`` fields or index names.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymongo
import pymongo.errors
from pymongo import InsertOne, UpdateOne
from pymongo.collection import Collection

from globalfunc import search
from globalfunc.errors import StorageError, StorageUnavailable
from globalfunc.naming import check_tier1, parse_storage_key
from globalfunc.record import FunctionRecord
from globalfunc.storage.base import redact_url, stamp
from globalfunc.storage.mongo_layout import (
    NO_WORDS,
    SEARCHED,
    Doc,
    from_pointer,
    pointer_doc,
    record_of,
    version_doc,
    version_id,
)

__all__ = ["MongoStorage"]

log = logging.getLogger(__name__)

_DUPLICATE = 11000
_MAX_ATTEMPTS = 200
_BATCH = 200  # records per bulk_write round


def _dup_indexes(exc: pymongo.errors.BulkWriteError) -> set[int]:
    """Indexes of the operations that failed as duplicates; anything else re-raises."""
    dups = set()
    for err in exc.details.get("writeErrors", []):
        if err.get("code") != _DUPLICATE:
            raise exc
        dups.add(int(err["index"]))
    return dups


class MongoStorage:
    """``Storage`` on a MongoDB (or MongoDB-wire) server; safe to share between threads.

    ``url`` is a MongoDB URI; its path names the database (``globalfunc`` if absent).
    ``timeout`` bounds server selection, connecting and every socket read. ``client``
    replaces the connection (tests pass a ``mongomock`` client).
    """

    def __init__(
        self,
        url: str = "mongodb://127.0.0.1:27017/globalfunc",
        *,
        timeout: float = 2.0,
        pool_size: int = 32,
        client: Any | None = None,
        database: str | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.timeout = timeout
        ms = int(timeout * 1000)
        try:
            self._client = client or pymongo.MongoClient(
                url,
                serverSelectionTimeoutMS=ms,
                connectTimeoutMS=ms,
                socketTimeoutMS=ms,
                waitQueueTimeoutMS=ms,
                maxPoolSize=pool_size,
                appname="globalfunc",
            )
            self._db = (
                self._client[database]
                if database
                else self._client.get_default_database(default="globalfunc")
            )
        except (pymongo.errors.ConfigurationError, pymongo.errors.InvalidURI, ValueError) as exc:
            raise StorageError(f"bad MongoDB URL {self.url!r}: {exc}") from None
        # mongomock's bulk_write cannot take current pymongo's UpdateOne: send those singly
        self._one_by_one = type(self._client).__module__.startswith("mongomock")
        self._ready: set[str] = set()
        self._text: dict[str, bool] = {}

    # -- plumbing ----------------------------------------------------------------------
    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (
            pymongo.errors.ConnectionFailure,
            pymongo.errors.ServerSelectionTimeoutError,
        ) as exc:
            raise StorageUnavailable(
                f"MongoDB at {self.url} is unreachable while trying to {what}: "
                f"{type(exc).__name__}; check that the server is running and the URL is right",
                url=self.url,
            ) from exc
        except pymongo.errors.PyMongoError as exc:
            raise StorageError(
                f"MongoDB at {self.url} failed to {what}: {exc}", url=self.url
            ) from exc

    def _colls(self, tier1: str) -> tuple[Collection[Doc], Collection[Doc], Collection[Doc]]:
        check_tier1(tier1)
        base = tier1.replace("-", "_x2d_")  # wire-compatible servers allow only [A-Za-z0-9_]
        pointers = self._db[base]
        versions = self._db[f"{base}__versions"]
        content = self._db[f"{base}__content"]
        if tier1 not in self._ready:
            with self._errors(f"create the indexes of space {tier1}"):
                content.create_index(
                    [("tier2", 1), ("name", 1), ("sha256", 1)], unique=True, name="gf_content"
                )
                versions.create_index([("k", 1), ("seq", -1)], name="gf_versions")
                pointers.create_index(
                    [("package", 1), ("branch", 1), ("deleted", 1)], name="gf_list"
                )
            self._text[tier1] = self._ensure_text_index(pointers)
            self._ready.add(tier1)
        return pointers, versions, content

    def _ensure_text_index(self, pointers: Collection[Doc]) -> bool:
        try:
            with contextlib.suppress(pymongo.errors.OperationFailure):
                # an index of an earlier layout: MongoDB allows one text index a collection
                pointers.drop_index("gf_text")
            pointers.create_index([("words", "text")], default_language="none", name="gf_words")
        except NotImplementedError as exc:
            log.info("no text index on %s (%s); search scans the space", pointers.name, exc)
            return False
        except pymongo.errors.OperationFailure as exc:
            # some servers refuse to create an index that exists: does a text query work?
            try:
                pointers.find_one({"$text": {"$search": "gf"}}, {"_id": 1})
            except (pymongo.errors.OperationFailure, NotImplementedError):
                log.info("no text index on %s (%s); search scans the space", pointers.name, exc)
                return False
        return True

    @staticmethod
    def _split(key: str) -> tuple[str, str]:
        parsed = parse_storage_key(key)
        return parsed.tier1, f"{parsed.tier2}.{parsed.func}"

    # -- writes --------------------------------------------------------------------------
    def put(self, records: Sequence[FunctionRecord]) -> list[bool]:
        return [r is not None for r in self.save(records)]

    def save(self, records: Sequence[FunctionRecord]) -> list[FunctionRecord | None]:
        """Like ``put``, but return each stored version (``extra["seq"]`` set) or ``None``.

        The tiered store uses the version numbers to keep its cache in durable order.
        """
        now = time.time()
        out: list[FunctionRecord | None] = [None] * len(records)
        # rounds: the k-th occurrence of each key goes in round k, so a key's versions of
        # one batch are claimed in batch order and never race each other
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for i, record in enumerate(records):
            n = seen.get(record.key, 0)
            seen[record.key] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(i)
        by_space: dict[str, list[int]] = {}
        for batch in rounds:
            by_space.clear()
            for i in batch:
                by_space.setdefault(records[i].tier1, []).append(i)
            for tier1, all_indexes in by_space.items():
                # chunks keep each bulk_write well inside the socket timeout
                for c in range(0, len(all_indexes), _BATCH):
                    indexes = all_indexes[c : c + _BATCH]
                    stamped = [stamp(records[i], now) for i in indexes]
                    for j, stored in zip(indexes, self._save_space(tier1, stamped), strict=True):
                        out[j] = stored
        return out

    def _save_space(self, tier1: str, records: list[FunctionRecord]) -> list[FunctionRecord | None]:
        pointers, versions, content = self._colls(tier1)
        out: list[FunctionRecord | None] = [None] * len(records)
        pending = list(range(len(records)))
        locals_ = [f"{r.storage_key.tier2}.{r.name}" for r in records]
        with self._errors(f"save records in space {tier1}"):
            # content first: a claimed version must always find its code
            self._insert_ignoring_dups(
                content,
                {
                    f"{locals_[i]}#{r.sha256}": {
                        "tier2": r.storage_key.tier2,
                        "name": r.name,
                        "sha256": r.sha256,
                        "code": r.code,
                    }
                    for i, r in enumerate(records)
                },
            )
            for _ in range(_MAX_ATTEMPTS):
                if not pending:
                    return out
                current = {
                    d["_id"]: d
                    for d in pointers.find(
                        {"_id": {"$in": [locals_[i] for i in pending]}},
                        {"seq": 1, "sha256": 1, "deleted": 1, "description": 1},
                    )
                }
                claims: list[tuple[int, int, Doc]] = []  # (index, previous seq, pointer doc)
                for i in pending:
                    record, local = records[i], locals_[i]
                    cur = current.get(local)
                    given = record.extra.get("description") if record.extra else None
                    known = (cur or {}).get("description") or ""
                    if (
                        cur
                        and cur["sha256"] == record.sha256
                        and not cur["deleted"]
                        and (not isinstance(given, str) or given == known)
                    ):
                        continue  # unchanged: a no-op, decided against the pointer we read
                    if not isinstance(given, str) and known:  # keep the key's description
                        record = records[i] = record.with_(
                            extra={**record.extra, "description": known}
                        )
                    prev = int(cur["seq"]) if cur else 0
                    claims.append((i, prev, pointer_doc(record, local, prev + 1)))
                if not claims:
                    return out
                lost = self._claim(versions, claims)
                self._move_pointers(pointers, [c for c in claims if c[0] not in lost])
                for i, _, doc in claims:
                    if i not in lost:
                        out[i] = from_pointer(doc)
                pending = sorted(lost)
                for i in pending:
                    self._repair(pointers, versions, content, locals_[i])
        raise StorageError(
            f"could not save {len(pending)} record(s) in space {tier1}: "
            f"other writers kept changing them ({_MAX_ATTEMPTS} attempts)"
        )

    def _claim(self, versions: Collection[Doc], claims: list[tuple[int, int, Doc]]) -> set[int]:
        """Insert the claimed version documents; return the indexes whose claim was lost."""
        ops = [InsertOne(version_doc(doc)) for _, _, doc in claims]
        try:
            versions.bulk_write(ops, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            return {claims[j][0] for j in _dup_indexes(exc)}
        return set()

    def _move_pointers(self, pointers: Collection[Doc], claims: list[tuple[int, int, Doc]]) -> None:
        """Insert new pointers and move existing ones from their previous version."""
        moves: list[tuple[Doc | None, Doc]] = []  # (filter, or None to insert; document)
        for _, prev, doc in claims:
            if prev == 0:
                moves.append((None, doc))
            else:
                fields = {k: v for k, v in doc.items() if k != "_id"}
                moves.append(({"_id": doc["_id"], "seq": prev}, {"$set": fields}))
        if self._one_by_one:
            for where, doc in moves:
                try:
                    if where is None:
                        pointers.insert_one(doc)
                    else:
                        pointers.update_one(where, doc)
                except pymongo.errors.DuplicateKeyError:
                    pass  # another writer already moved it for us
            return
        ops: list[InsertOne[Doc] | UpdateOne] = [
            InsertOne(doc) if where is None else UpdateOne(where, doc) for where, doc in moves
        ]
        if not ops:
            return
        try:
            pointers.bulk_write(ops, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            _dup_indexes(exc)  # a duplicate: another writer already moved it for us

    def _repair(
        self,
        pointers: Collection[Doc],
        versions: Collection[Doc],
        content: Collection[Doc],
        local: str,
    ) -> None:
        """Move the pointer of ``local`` up to its highest claimed version."""
        for _ in range(_MAX_ATTEMPTS):
            cur = pointers.find_one({"_id": local}, {"seq": 1})
            prev = int(cur["seq"]) if cur else 0
            nxt = versions.find_one({"_id": version_id(local, prev + 1)})
            if nxt is None:
                return
            code_doc = content.find_one({"_id": f"{local}#{nxt['sha256']}"})
            if code_doc is None:
                raise StorageError(f"MongoDB lost the code of {local} version {prev + 1}")
            record = record_of(
                nxt["meta"], code_doc["code"], prev + 1, nxt["deleted"], nxt["saved_at"]
            )
            doc = pointer_doc(record, local, prev + 1)
            doc["meta"] = nxt["meta"]
            self._move_pointers(pointers, [(0, prev, doc)])

    @staticmethod
    def _insert_ignoring_dups(coll: Collection[Doc], docs: dict[str, Doc]) -> None:
        if not docs:
            return
        try:
            coll.bulk_write([InsertOne({"_id": k, **v}) for k, v in docs.items()], ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            _dup_indexes(exc)  # content already there: it is content-addressed

    def delete(self, key: str) -> bool:
        return self.remove(key) is not None

    def remove(self, key: str) -> FunctionRecord | None:
        """Append a tombstone and return it (``extra["seq"]`` set), or ``None`` if not live."""
        tier1, local = self._split(key)
        pointers, versions, content = self._colls(tier1)
        with self._errors(f"delete {key}"):
            for _ in range(_MAX_ATTEMPTS):
                cur = pointers.find_one({"_id": local})
                if cur is None or cur["deleted"]:
                    return None
                doc = dict(cur, seq=cur["seq"] + 1, deleted=True, saved_at=time.time())
                lost = self._claim(versions, [(0, cur["seq"], doc)])
                if not lost:
                    self._move_pointers(pointers, [(0, cur["seq"], doc)])
                    return from_pointer(doc)
                self._repair(pointers, versions, content, local)
        raise StorageError(f"could not delete {key}: it kept changing under concurrent writers")

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str, sha256: str | None = None) -> FunctionRecord | None:
        tier1, local = self._split(key)
        pointers, versions, content = self._colls(tier1)
        with self._errors(f"read {key}"):
            if sha256 is None:
                doc = pointers.find_one({"_id": local}, NO_WORDS)
                return None if doc is None or doc["deleted"] else from_pointer(doc)
            found = list(
                versions.find({"k": local, "sha256": sha256, "deleted": False})
                .sort("seq", -1)
                .limit(1)
            )
            if not found:
                return None
            code = content.find_one({"_id": f"{local}#{sha256}"})
        if code is None:
            raise StorageError(f"MongoDB lost the code of {key} version {sha256[:12]}")
        v = found[0]
        return record_of(v["meta"], code["code"], v["seq"], v["deleted"], v["saved_at"])

    def history(self, key: str) -> list[FunctionRecord]:
        tier1, local = self._split(key)
        _, versions, content = self._colls(tier1)
        with self._errors(f"read the history of {key}"):
            docs = list(versions.find({"k": local}).sort("seq", -1))
            shas = sorted({d["sha256"] for d in docs})
            codes = {
                c["sha256"]: c["code"]
                for c in content.find({"_id": {"$in": [f"{local}#{s}" for s in shas]}})
            }
        missing = set(shas) - set(codes)
        if missing:
            raise StorageError(f"MongoDB lost the code of {len(missing)} version(s) of {key}")
        return [
            record_of(d["meta"], codes[d["sha256"]], d["seq"], d["deleted"], d["saved_at"])
            for d in docs
        ]

    def list(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> list[FunctionRecord]:
        pointers, _, _ = self._colls(tier1)
        query: Doc = {"deleted": False}
        if package is not None:
            query["package"] = package
        if branch is not None:
            query["branch"] = branch
        with self._errors(f"list space {tier1}"):
            docs = list(pointers.find(query, NO_WORDS))
        records = [from_pointer(d) for d in docs]
        records.sort(key=lambda r: r.key)
        return records

    def search(
        self,
        tier1: str,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> builtins.list[FunctionRecord]:
        terms = search.query_terms(query)
        if not terms or limit <= 0:
            return []
        pointers, _, _ = self._colls(tier1)
        if self._text.get(tier1):
            try:
                with self._errors(f"search space {tier1}"):
                    return self._text_search(pointers, tier1, terms, query, limit, package, branch)
            except StorageUnavailable:
                raise
            except (StorageError, NotImplementedError) as exc:
                log.info("text search unavailable on %s (%s); scanning instead", tier1, exc)
                self._text[tier1] = False
        records = self.list(tier1, package=package, branch=branch)
        return search.rank(records, query, limit, package=package, branch=branch)

    def _text_search(
        self,
        pointers: Collection[Doc],
        tier1: str,
        terms: builtins.list[str],
        query: str,
        limit: int,
        package: str | None,
        branch: str | None,
    ) -> builtins.list[FunctionRecord]:
        """Candidates from the text index, one query per term (a server may AND the words
        of one ``$search``), ranked from their searchable fields; the best read whole."""
        where: Doc = {"deleted": False}
        if package is not None:
            where["package"] = package
        if branch is not None:
            where["branch"] = branch
        docs: dict[str, search.SearchDoc] = {}
        for term in terms:
            found = pointers.find(
                {"$text": {"$search": search.narrow_term(term)}, **where}, SEARCHED
            )
            for d in found:
                if d["_id"] not in docs:
                    docs[d["_id"]] = search.SearchDoc(
                        key=f"{tier1}.{d['_id']}",
                        package=d.get("package") or "",
                        branch=d.get("branch") or "",
                        name=d.get("name") or "",
                        description=d.get("description") or "",
                        docstring=d.get("docstring") or "",
                        signature=d.get("signature") or "",
                        code=d.get("code") or "",
                    )
        best = search.rank_docs(docs.values(), query, limit, package=package, branch=branch)
        if not best:
            return []
        ids = [doc.key[len(tier1) + 1 :] for _, doc in best]
        full = {d["_id"]: d for d in pointers.find({"_id": {"$in": ids}}, NO_WORDS)}
        return [from_pointer(full[i]) for i in ids if i in full and not full[i]["deleted"]]

    def close(self) -> None:
        self._client.close()

    def ping(self) -> bool:
        """``True`` when the server answers; raises ``StorageUnavailable`` otherwise."""
        with self._errors("ping"):
            return bool(self._db.command("ping").get("ok"))
