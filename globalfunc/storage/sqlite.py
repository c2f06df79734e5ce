"""The embedded default store: one SQLite file (WAL), content-addressed, with FTS5 search.

Tables: ``blobs`` (code by sha256, written once), ``versions`` (append-only: one row per
save or tombstone, metadata as JSON), ``keys`` (one row per key pointing at its newest
version; its rowid is also the row of the key in the ``fts`` full-text index). The index
is contentless (it keeps tokens, not a second copy of every file): removing a key's entry
hands FTS5 the indexed text again, read back from ``versions`` and ``blobs``.

Writes take SQLite's write lock up front (``BEGIN IMMEDIATE``) and wait up to the busy
timeout, so two processes saving the same function both land, one after the other.
Commits are ``synchronous=FULL``: a version that ``put`` reported saved survives a crash.
One connection per thread; this class is safe to share between threads.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from globalfunc.errors import StorageError, StorageUnavailable
from globalfunc.record import FunctionRecord
from globalfunc.storage.base import query_terms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, code TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    saved_at REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    meta BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_by_key ON versions (key, id);
CREATE TABLE IF NOT EXISTS keys (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    tier1 TEXT NOT NULL,
    package TEXT NOT NULL,
    branch TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS keys_by_space ON keys (tier1, package, branch);
"""
_FTS = "CREATE VIRTUAL TABLE fts USING fts5 (name, docstring, signature, code, content='')"

_CHUNK = 500  # stays under SQLite's bound-parameter limit


_META_FIELDS = tuple(f for f in FunctionRecord.__dataclass_fields__ if f != "code")


def _meta(record: FunctionRecord, saved_at: float) -> bytes:
    """Every field but the code (stored once per content in ``blobs``) as JSON."""
    meta = {name: getattr(record, name) for name in _META_FIELDS}
    meta["saved_at"] = saved_at
    return orjson.dumps(meta)


def _indexed(meta: bytes, code: str) -> tuple[str, str, str, str]:
    """The (name, docstring, signature, code) a version was indexed with."""
    data = orjson.loads(meta)
    return data["name"], data.get("docstring") or "", data.get("signature") or "", code


class SqliteStorage:
    """``Storage`` on one SQLite file. ``path`` may be ``":memory:"`` (one shared connection)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 2.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._read() as db:
            db.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        self._ensure_index()

    def _ensure_index(self) -> None:
        """Create the full-text index, or rebuild one of an older layout, from stored data."""
        with self._read() as db:
            row = db.execute("SELECT sql FROM sqlite_master WHERE name = 'fts'").fetchone()
        if row is not None and "content=''" in row[0]:
            return
        with self._write() as db:
            db.execute("DROP TABLE IF EXISTS fts")
            db.execute(_FTS)
            rows = db.execute(
                "SELECT k.id, v.meta, b.code FROM keys k JOIN versions v ON v.id = k.version_id "
                "JOIN blobs b ON b.sha256 = v.sha256 WHERE k.deleted = 0"
            ).fetchall()
            db.executemany(
                "INSERT INTO fts (rowid, name, docstring, signature, code) VALUES (?, ?, ?, ?, ?)",
                [(key_id, *_indexed(meta, code)) for key_id, meta, code in rows],
            )

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
        keyed = [(record.key, record) for record in records]
        with self._write() as db:
            known = self._known_keys(db, [key for key, _ in keyed])
            latest = {key: sha for key, (sha, deleted, _) in known.items() if not deleted}
            next_id = (db.execute("SELECT coalesce(max(id), 0) FROM versions").fetchone()[0]) + 1
            added: builtins.list[bool] = []
            blobs: builtins.list[tuple[str, str]] = []
            versions: builtins.list[tuple[Any, ...]] = []
            keys: builtins.list[tuple[Any, ...]] = []
            fts: dict[str, tuple[Any, ...]] = {}  # the last version of each key wins
            for key, record in keyed:
                if latest.get(key) == record.sha256:
                    added.append(False)
                    continue
                latest[key] = record.sha256
                saved_at = record.saved_at or now
                blobs.append((record.sha256, record.code))
                versions.append((next_id, key, record.sha256, saved_at, 0, _meta(record, saved_at)))
                keys.append(
                    (key, record.tier1, record.package, record.branch, next_id, record.sha256)
                )
                fts[key] = (record.name, record.docstring or "", record.signature, record.code)
                next_id += 1
                added.append(True)
            # Unindex replaced versions while the keys still point at them.
            self._unindex(db, [known[key][2] for key in fts if key in known and not known[key][1]])
            db.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", blobs)
            db.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)", versions)
            db.executemany(
                "INSERT INTO keys (key, tier1, package, branch, version_id, sha256, deleted) "
                "VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (key) DO UPDATE SET "
                "version_id = excluded.version_id, sha256 = excluded.sha256, deleted = 0",
                keys,
            )
            # The key's row id is its row in the full-text index (explicit rowids are ~3x
            # faster for FTS5 than INSERT ... SELECT).
            new_ids = self._known_keys(db, [key for key in fts if key not in known])
            ids = {key: (known.get(key) or new_ids[key])[2] for key in fts}
            db.executemany(
                "INSERT INTO fts (rowid, name, docstring, signature, code) VALUES (?, ?, ?, ?, ?)",
                [(ids[key], *row) for key, row in fts.items()],
            )
        return added

    def _unindex(self, db: sqlite3.Connection, key_ids: builtins.list[int]) -> None:
        """Remove live keys from the contentless index, which needs the text it indexed."""
        for i in range(0, len(key_ids), _CHUNK):
            chunk = key_ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                "SELECT k.id, v.meta, b.code FROM keys k JOIN versions v ON v.id = k.version_id "
                f"JOIN blobs b ON b.sha256 = v.sha256 WHERE k.id IN ({marks})",
                chunk,
            ).fetchall()
            db.executemany(
                "INSERT INTO fts (fts, rowid, name, docstring, signature, code) "
                "VALUES ('delete', ?, ?, ?, ?, ?)",
                [(key_id, *_indexed(meta, code)) for key_id, meta, code in rows],
            )

    def _known_keys(
        self, db: sqlite3.Connection, keys: builtins.list[str]
    ) -> dict[str, tuple[str, int, int]]:
        """``key -> (latest sha256, deleted, key row id)`` for the keys that exist."""
        found: dict[str, tuple[str, int, int]] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, sha, deleted, key_id in db.execute(
                f"SELECT key, sha256, deleted, id FROM keys WHERE key IN ({marks})", chunk
            ):
                found[key] = (sha, deleted, key_id)
        return found

    def _records(self, rows: Sequence[tuple[Any, ...]]) -> list[FunctionRecord]:
        out = []
        for meta, code, deleted, saved_at in rows:
            data = orjson.loads(meta)
            data["code"] = code
            data["deleted"] = bool(deleted)
            data["saved_at"] = saved_at
            out.append(FunctionRecord.from_dict(data))
        return out

    _SELECT = (
        "SELECT v.meta, b.code, v.deleted, v.saved_at FROM versions v "
        "JOIN blobs b ON b.sha256 = v.sha256 "
    )

    def get(self, key: str, sha256: str | None = None) -> FunctionRecord | None:
        with self._read() as db:
            if sha256 is None:
                rows = db.execute(
                    self._SELECT + "JOIN keys k ON k.version_id = v.id "
                    "WHERE k.key = ? AND k.deleted = 0",
                    (key,),
                ).fetchall()
            else:
                rows = db.execute(
                    self._SELECT + "WHERE v.key = ? AND v.sha256 = ? AND v.deleted = 0 "
                    "ORDER BY v.id DESC LIMIT 1",
                    (key, sha256),
                ).fetchall()
        records = self._records(rows)
        return records[0] if records else None

    def history(self, key: str) -> list[FunctionRecord]:
        with self._read() as db:
            rows = db.execute(
                self._SELECT + "WHERE v.key = ? ORDER BY v.id DESC", (key,)
            ).fetchall()
        return self._records(rows)

    def list(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> builtins.list[FunctionRecord]:
        where = ["k.tier1 = ?", "k.deleted = 0"]
        args: builtins.list[Any] = [tier1]
        if package is not None:
            where.append("k.package = ?")
            args.append(package)
        if branch is not None:
            where.append("k.branch = ?")
            args.append(branch)
        with self._read() as db:
            rows = db.execute(
                self._SELECT
                + "JOIN keys k ON k.version_id = v.id WHERE "
                + " AND ".join(where)
                + " ORDER BY k.key",
                args,
            ).fetchall()
        return self._records(rows)

    def delete(self, key: str) -> bool:
        with self._write() as db:
            row = db.execute(
                "SELECT k.id, v.meta, v.sha256 FROM keys k JOIN versions v ON v.id = k.version_id "
                "WHERE k.key = ? AND k.deleted = 0",
                (key,),
            ).fetchone()
            if row is None:
                return False
            key_id, meta, sha = row
            cur = db.execute(
                "INSERT INTO versions (key, sha256, saved_at, deleted, meta) VALUES (?, ?, ?, 1, ?)",
                (key, sha, time.time(), meta),
            )
            db.execute(
                "UPDATE keys SET version_id = ?, deleted = 1 WHERE id = ?", (cur.lastrowid, key_id)
            )
            self._unindex(db, [key_id])
        return True

    def search(self, tier1: str, query: str, limit: int = 20) -> builtins.list[FunctionRecord]:
        terms = query_terms(query)
        if not terms:
            return []
        match = " ".join('"' + t.replace('"', "") + '"*' for t in terms)
        with self._read() as db:
            rows = db.execute(
                self._SELECT + "JOIN keys k ON k.version_id = v.id "
                "JOIN (SELECT rowid AS rid, bm25(fts, 10.0, 4.0, 2.0, 1.0) AS score "
                "      FROM fts WHERE fts MATCH ?) f ON f.rid = k.id "
                "WHERE k.tier1 = ? AND k.deleted = 0 ORDER BY f.score, k.key LIMIT ?",
                (match, tier1, limit),
            ).fetchall()
        return self._records(rows)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        if self._memory is not None:
            self._memory.close()
            self._memory = None
