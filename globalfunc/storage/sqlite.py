"""The embedded default store: one SQLite file (WAL), content-addressed, with an FTS5 index that narrows searches.

Layout (``PRAGMA user_version`` 4):

- ``blobs``: one row per distinct content (``blob_id``), found by its sha256 as 32 raw
  bytes (unique index): the code and, in ``meta``, what the code determines (md5, size,
  line count, signature, params, returns, docstring, imports, lineno, is_async) as a JSON
  array in that order, each param an array ``[name, kind, default, annotation]``.
  Written once per content. (Not ``WITHOUT ROWID``: rows of ~1.1 KB would overflow its
  pages.)
- ``versions`` (append-only): one short row (~70 bytes) per save or tombstone with only
  what belongs to that version: ``key_id``, ``blob_id``, ``saved_at``, ``deleted``,
  ``git_commit``, the file facts (``mtime_ns``, ``modified_time``, ``file_name``),
  ``extra`` (JSON, NULL when empty) and ``dirty`` (the file differed from the commit). ``own_meta`` is NULL unless this version's content
  metadata differs from the one stored with the content (e.g. saved by a scanner that
  read the code differently); then it holds this version's own copy.
- ``keys``: one row per key (its parts as columns) pointing at its newest version, found
  by its key (unique index; ``list`` reads a range of it, as keys start with their tier1
  and package, so there is no second index to keep up on every save); its rowid is the
  key's ``key_id`` and its row in the ``fts`` full-text index. The index is
  contentless (tokens only, no second copy of every file): removing a key's entry hands
  FTS5 the indexed text again, read back from ``versions`` and ``blobs``.

A record is put back together from its key row (tier1, package, branch, and the name as
the key's last part), its version row and its content row. Only this layout is read:
earlier ones were written by development versions only (no release wrote them), and a
file in one of them is refused with a message saying to move it away and rescan
(``gf save --all`` rebuilds the registry from the packages root).

Writes take SQLite's write lock up front (``BEGIN IMMEDIATE``) and wait up to the busy
timeout, so two processes saving the same function both land, one after the other.
Commits are ``synchronous=FULL``: a version that ``put`` reported saved survives a crash.
One connection per thread; this class is safe to share between threads. A database file
this class creates is ``0600`` (its ``-wal`` and ``-shm`` follow), a folder it creates
``0700``: only the owner reads the stored functions.

The DDL, the shared SELECTs and the encoding of rows are in
:mod:`globalfunc.storage.sqlite_layout`.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from globalfunc import search
from globalfunc.errors import StorageError, StorageUnavailable
from globalfunc.naming import key_prefix
from globalfunc.record import FunctionInfo, FunctionRecord
from globalfunc.storage.sqlite_layout import (
    ANY_VERSION,
    COLUMNS,
    FTS,
    INDEXED,
    LATEST,
    LAYOUT,
    SCHEMA,
    content_fields,
    content_meta,
    create_private,
    extra_description,
    index_docstring,
    indexed,
    pack,
    searched_fields,
    unpack,
)

_CHUNK = 500  # stays under SQLite's bound-parameter limit


class SqliteStorage:
    """``Storage`` on one SQLite file. ``path`` may be ``":memory:"`` (one shared connection)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 2.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_private(self.path)
        with self._read() as db:
            layout = db.execute("PRAGMA user_version").fetchone()[0]
        if layout != LAYOUT:
            self._create()

    def _create(self) -> None:
        """Create the tables in a new file; refuse a file of any other layout."""
        with self._write() as db:
            layout = db.execute("PRAGMA user_version").fetchone()[0]  # under the lock now
            if layout == LAYOUT:
                return
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if layout > LAYOUT:
                raise StorageError(
                    f"registry database {self.path!r} has layout {layout}, newer than this "
                    f"GlobalFunc understands ({LAYOUT}); upgrade GlobalFunc"
                )
            if layout != 0 or tables:
                raise StorageError(
                    f"registry database {self.path!r} has layout {layout}, written by a "
                    f"development version of GlobalFunc (this one reads layout {LAYOUT}); "
                    "move the file away and rescan: gf save --all"
                )
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(FTS)
            db.execute(f"PRAGMA user_version = {LAYOUT}")

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path,
                timeout=max(self.timeout, 5.0),
                isolation_level=None,
                check_same_thread=self.path != ":memory:",
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open registry database {self.path!r}: {exc}") from exc
        return db

    @property
    def _db(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._memory is None:
                self._memory = self._connect()
            return self._memory
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            if self.path == ":memory:":
                with self._lock:
                    yield self._db
            else:
                yield self._db
        except sqlite3.Error as exc:
            raise StorageError(f"registry database {self.path!r} failed: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._read() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- Storage -----------------------------------------------------------------------
    def put(self, records: Sequence[FunctionRecord]) -> builtins.list[bool]:
        if not records:
            return []
        now = time.time()
        return self._put(
            records,
            [record.key for record in records],
            [record.tier1 for record in records],
            [record.branch for record in records],
            [0 if record.commit is None else record.commit for record in records],  # see pack
            [record.saved_at or now for record in records],
            [orjson.dumps(record.extra).decode() if record.extra else 0 for record in records],
            [1 if record.dirty else 0 for record in records],
            [record.extra.get("description") if record.extra else None for record in records],
        )

    def put_infos(
        self,
        infos: Sequence[FunctionInfo],
        keys: Sequence[str],
        *,
        tier1: str,
        branch: str,
        commit: str | None,
        dirty: Sequence[bool] | None = None,
    ) -> builtins.list[bool]:
        """``put`` of ``FunctionRecord.from_info(info, tier1=, branch=, commit=, dirty=)``
        for each info, without building the records (a third of a batch's Python work).

        ``keys`` are the infos' storage keys, already validated (``FunctionRecord.key``);
        ``dirty`` the infos' dirty flags (default: none dirty).
        """
        if not infos:
            return []
        count = len(infos)
        return self._put(
            infos,
            keys,
            [tier1] * count,
            [branch] * count,
            [0 if commit is None else commit] * count,
            [time.time()] * count,
            [0] * count,
            [0] * count if dirty is None else [1 if d else 0 for d in dirty],
            None,
        )

    def _put(
        self,
        items: Sequence[FunctionInfo],
        keys: Sequence[str],
        tier1s: Sequence[str],
        branches: Sequence[str],
        commits: Sequence[str | int],
        saved_ats: Sequence[float],
        extras: Sequence[str | int],
        dirties: Sequence[int],
        descriptions: Sequence[str | None] | None,
    ) -> builtins.list[bool]:
        """Store versions: ``items`` (their content and file facts) placed by the parallel
        sequences: key, tier1, branch, git commit (0: none), saved_at, extra (JSON; 0:
        none), dirty (0 or 1), description given (``None``: none, keep the key's).

        A version whose content and description equal the key's latest live one is a
        no-op; one that gives no description keeps the key's latest one.
        """
        extras = builtins.list(extras)
        # Decide first, then write: the rows are built as each statement consumes them
        # (generators), so a batch keeps no tuples alive per record, which would set off
        # rounds of garbage collection over the whole process's objects.
        shas = [item.sha256 for item in items]
        with self._write() as db:
            known = self._known_keys(db, keys)
            latest = {key: sha for key, (sha, deleted, _, _) in known.items() if not deleted}
            described = {
                key: desc
                for key, (_, _, _, extra) in known.items()
                if (desc := extra_description(extra)) is not None
            }
            packed = {  # the contents that may be new, as stored (see pack)
                sha: pack(sha)
                for key, sha in zip(keys, shas, strict=True)
                if latest.get(key) != sha
            }
            blob_ids: dict[str, int] = {}
            blob_metas: dict[str, str] = {}
            self._stored_blobs(db, builtins.list(packed.values()), blob_ids, blob_metas)
            version_id, key_id, blob_id = db.execute(
                "SELECT (SELECT coalesce(max(id), 0) FROM versions), "
                "(SELECT coalesce(max(id), 0) FROM keys), (SELECT coalesce(max(id), 0) FROM blobs)"
            ).fetchone()
            key_ids = {key: row[2] for key, row in known.items()}
            added: builtins.list[bool] = []
            new_blobs: builtins.list[int] = []  # index of the record that brings the content
            saved: builtins.list[int] = []  # index of the record of each new version
            own_metas: builtins.list[str | int] = []  # its own content metadata, or 0
            last: dict[str, int] = {}  # key -> its last new version (its row and index entry)
            index_docs: dict[str, str] = {}  # key -> the docstring column of its index entry
            for i, (key, sha) in enumerate(zip(keys, shas, strict=True)):
                given = descriptions[i] if descriptions is not None else None
                if latest.get(key) == sha and (given is None or given == described.get(key)):
                    added.append(False)
                    continue
                latest[key] = sha
                if given is None and described.get(key):
                    stored = extras[i]
                    extra = orjson.loads(stored) if isinstance(stored, str) else {}
                    extra["description"] = described[key]
                    extras[i] = orjson.dumps(extra).decode()
                elif given is not None:
                    described[key] = given
                index_docs[key] = index_docstring(items[i].docstring, described.get(key))
                meta = content_meta(items[i])
                stored_meta = blob_metas.get(sha)
                if stored_meta is None and sha not in packed:
                    # A content passed over above as its key's latest, back after a change
                    # earlier in this batch (put([v1, v2, v1]) with v1 stored): it is stored.
                    packed[sha] = pack(sha)
                    self._stored_blobs(db, [packed[sha]], blob_ids, blob_metas)
                    stored_meta = blob_metas.get(sha)
                if stored_meta is None:
                    blob_id += 1
                    blob_ids[sha] = blob_id
                    blob_metas[sha] = stored_meta = meta
                    new_blobs.append(i)
                if key not in key_ids:
                    key_id += 1
                    key_ids[key] = key_id
                saved.append(i)
                own_metas.append(0 if stored_meta == meta else meta)
                last[key] = len(saved)
                added.append(True)
            # Unindex replaced versions while the keys still point at them.
            self._unindex(db, [known[key][2] for key in last if key in known and not known[key][1]])
            db.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?, ?)",
                (
                    (blob_ids[shas[i]], packed[shas[i]], items[i].code, blob_metas[shas[i]])
                    for i in new_blobs
                ),
            )
            db.executemany(
                "INSERT INTO versions VALUES (?, ?, ?, ?, 0, nullif(?, 0), ?, ?, ?, "
                "nullif(?, 0), nullif(?, 0), ?)",
                (
                    (
                        version_id + n,
                        key_ids[keys[i]],
                        blob_ids[shas[i]],
                        saved_ats[i],
                        commits[i],
                        item.mtime_ns,
                        item.modified_time,
                        item.file_name,
                        extras[i],
                        own_meta,
                        dirties[i],
                    )
                    for n, (i, own_meta) in enumerate(zip(saved, own_metas, strict=True), 1)
                    for item in (items[i],)
                ),
            )
            db.executemany(
                "INSERT INTO keys (version_id, sha256, tier1, package, branch, id, key, deleted) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    (
                        version_id + n,
                        packed[shas[i]],
                        tier1s[i],
                        items[i].package,
                        branches[i],
                        key_ids[key],
                        key,
                    )
                    for key, n in last.items()
                    if key not in known
                    for i in (saved[n - 1],)
                ),
            )
            db.executemany(
                "UPDATE keys SET version_id = ?, sha256 = ?, deleted = 0 WHERE id = ?",
                (
                    (version_id + n, packed[shas[saved[n - 1]]], key_ids[key])
                    for key, n in last.items()
                    if key in known
                ),
            )
            # The key's row id is its row in the full-text index (explicit rowids are ~3x
            # faster for FTS5 than INSERT ... SELECT).
            db.executemany(
                "INSERT INTO fts (rowid, name, docstring, signature, code) VALUES (?, ?, ?, ?, ?)",
                (
                    (
                        key_ids[key],
                        item.name,
                        index_docs[key],
                        item.signature,
                        item.code,
                    )
                    for key, n in last.items()
                    for item in (items[saved[n - 1]],)
                ),
            )
        return added

    @staticmethod
    def _stored_blobs(
        db: sqlite3.Connection,
        packed: builtins.list[bytearray | str],
        ids: dict[str, int],
        metas: dict[str, str],
    ) -> None:
        """Fill ``ids`` and ``metas`` (by hex sha256) for the stored ones of ``packed``.

        ``packed``: distinct hashes as stored (see :func:`pack`).
        """
        for i in range(0, len(packed), _CHUNK):
            chunk = packed[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for sha, blob_id, meta in db.execute(
                f"SELECT sha256, id, meta FROM blobs WHERE sha256 IN ({marks})", chunk
            ):
                ids[unpack(sha)] = blob_id
                metas[unpack(sha)] = meta

    def _unindex(self, db: sqlite3.Connection, key_ids: builtins.list[int]) -> None:
        """Remove live keys from the contentless index, which needs the text it indexed."""
        for i in range(0, len(key_ids), _CHUNK):
            chunk = key_ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(INDEXED + f"WHERE k.id IN ({marks})", chunk).fetchall()
            db.executemany(
                "INSERT INTO fts (fts, rowid, name, docstring, signature, code) "
                "VALUES ('delete', ?, ?, ?, ?, ?)",
                [(key_id, *indexed(*row)) for key_id, *row in rows],
            )

    def _known_keys(
        self, db: sqlite3.Connection, keys: Sequence[str]
    ) -> dict[str, tuple[str, int, int, str | None]]:
        """``key -> (latest sha256, deleted, key row id, its extra JSON)`` for the keys that
        exist.

        The keys go in as one JSON array, each looked up in the key index: about twice as
        fast as ``IN (?, ...)`` lists, for one key as for thousands.
        """
        return {
            key: (unpack(sha), deleted, key_id, extra)
            for key, sha, deleted, key_id, extra in db.execute(
                "SELECT k.key, k.sha256, k.deleted, k.id, v.extra FROM json_each(?) j "
                "CROSS JOIN keys k ON k.key = j.value JOIN versions v ON v.id = k.version_id",
                (orjson.dumps(builtins.list(keys)).decode(),),
            )
        }

    @staticmethod
    def _records(rows: Iterable[tuple[Any, ...]]) -> list[FunctionRecord]:
        out = []
        for (
            key,
            tier1,
            package,
            branch,
            sha,
            code,
            meta,
            own_meta,
            saved_at,
            deleted,
            commit,
            mtime_ns,
            modified_time,
            file_name,
            extra,
            dirty,
        ) in rows:
            data = content_fields(own_meta or meta)
            data.update(
                tier1=tier1,
                package=package,
                branch=branch,
                name=key.rpartition(".")[2],
                sha256=unpack(sha),
                code=code,
                saved_at=saved_at,
                deleted=bool(deleted),
                commit=commit,
                mtime_ns=mtime_ns,
                modified_time=modified_time,
                file_name=file_name,
                extra=orjson.loads(extra) if extra else {},
                dirty=bool(dirty),
            )
            out.append(FunctionRecord.from_dict(data))
        return out

    def get(self, key: str, sha256: str | None = None) -> FunctionRecord | None:
        with self._read() as db:
            if sha256 is None:
                rows = db.execute(LATEST + "WHERE k.key = ? AND k.deleted = 0", (key,)).fetchall()
            else:
                rows = db.execute(
                    ANY_VERSION + "WHERE k.key = ? AND b.sha256 = ? AND v.deleted = 0 "
                    "ORDER BY v.id DESC LIMIT 1",
                    (key, pack(sha256)),
                ).fetchall()
        records = self._records(rows)
        return records[0] if records else None

    def history(self, key: str) -> list[FunctionRecord]:
        with self._read() as db:
            rows = db.execute(ANY_VERSION + "WHERE k.key = ? ORDER BY v.id DESC", (key,)).fetchall()
        return self._records(rows)

    def list(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> builtins.list[FunctionRecord]:
        # A range of the key index (keys start with their tier1 and package): no index of
        # its own to keep up on every save, and the rows come in key order.
        prefix = key_prefix(tier1, package)
        where = ["k.key >= ?", "k.key < ?", "k.tier1 = ?", "k.deleted = 0"]
        args: builtins.list[Any] = [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1), tier1]
        if package is not None:
            where.append("k.package = ?")
            args.append(package)
        if branch is not None:
            where.append("k.branch = ?")
            args.append(branch)
        with self._read() as db:
            rows = db.execute(
                LATEST + "WHERE " + " AND ".join(where) + " ORDER BY k.key", args
            ).fetchall()
        return self._records(rows)

    def delete(self, key: str) -> bool:
        with self._write() as db:
            row = db.execute(
                "SELECT id, version_id FROM keys WHERE key = ? AND deleted = 0", (key,)
            ).fetchone()
            if row is None:
                return False
            key_id, version_id = row
            self._unindex(db, [key_id])  # while the key still points at the live version
            cur = db.execute(
                "INSERT INTO versions (key_id, blob_id, saved_at, deleted, git_commit, mtime_ns, "
                "modified_time, file_name, extra, own_meta, dirty) SELECT key_id, blob_id, ?, 1, "
                "git_commit, mtime_ns, modified_time, file_name, extra, own_meta, dirty "
                "FROM versions WHERE id = ?",
                (time.time(), version_id),
            )
            db.execute(
                "UPDATE keys SET version_id = ?, deleted = 1 WHERE id = ?", (cur.lastrowid, key_id)
            )
        return True

    def search(
        self,
        tier1: str,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> builtins.list[FunctionRecord]:
        """The full-text index narrows (any term as a word prefix); :mod:`globalfunc.search`
        ranks the candidates from their searchable text, and only the best become records."""
        terms = search.query_terms(query)
        if not terms or limit <= 0:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"*' for t in terms)
        where = ["k.tier1 = ?", "k.deleted = 0"]
        args: builtins.list[Any] = [match, tier1]
        if package is not None:
            where.append("k.package = ?")
            args.append(package)
        if branch is not None:
            where.append("k.branch = ?")
            args.append(branch)
        with self._read() as db:
            # the whole rows at once: the best are built from them, with no second read
            rows = db.execute(
                "SELECT " + COLUMNS + "FROM fts JOIN keys k ON k.id = fts.rowid "
                "JOIN versions v ON v.id = k.version_id JOIN blobs b ON b.id = v.blob_id "
                "WHERE fts MATCH ? AND " + " AND ".join(where),
                args,
            ).fetchall()
        by_key: dict[str, tuple[Any, ...]] = {}
        docs = []
        for row in rows:
            key, code, meta, own_meta, extra = row[0], row[5], row[6], row[7], row[14]
            signature, docstring = searched_fields(own_meta or meta)
            by_key[key] = row
            docs.append(
                search.SearchDoc(
                    key=key,
                    package=row[2],
                    branch=row[3],
                    name=key.rpartition(".")[2],
                    description=extra_description(extra) or "",
                    docstring=docstring,
                    signature=signature,
                    code=code,
                )
            )
        best = search.rank_docs(docs, query, limit, package=package, branch=branch)
        return self._records(by_key[doc.key] for _, doc in best)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        if self._memory is not None:
            self._memory.close()
            self._memory = None
