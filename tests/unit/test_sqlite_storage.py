"""SQLite specifics beyond the shared contract: the table and index layouts, their migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from globalfunc.record import FunctionRecord
from globalfunc.storage.sqlite import SqliteStorage
from tests.factories import make_record


def test_old_index_layout_is_rebuilt_from_stored_versions(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = SqliteStorage(db)
    store.put(
        [make_record("to_pickle", doc="Save data to a pickle."), make_record("slug", doc="Slugs.")]
    )
    store.delete("sp_GlobalFunc.Base_master.slug")
    store.close()
    con = sqlite3.connect(db)  # an index of the earlier layout (it kept a copy of the text)
    con.execute("DROP TABLE fts")
    con.execute("CREATE VIRTUAL TABLE fts USING fts5 (name, docstring, signature, code)")
    con.commit()
    con.close()
    store = SqliteStorage(db)
    assert [r.name for r in store.search("sp_GlobalFunc", "pickle")] == ["to_pickle"]
    assert store.search("sp_GlobalFunc", "slugs") == []
    sql = sqlite3.connect(db).execute("SELECT sql FROM sqlite_master WHERE name = 'fts'").fetchone()
    assert "content=''" in sql[0]
    store.close()


def test_replacing_versions_keeps_the_index_exact(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "registry.db")
    for i in range(5):
        store.put([make_record("f", code=f"def f():\n    return 'word{i}'\n", doc=f"version{i}")])
    assert [r.name for r in store.search("sp_GlobalFunc", "version4")] == ["f"]
    for i in range(4):
        assert store.search("sp_GlobalFunc", f"version{i}") == []
        assert store.search("sp_GlobalFunc", f"word{i}") == []
    store.close()


_LAYOUT_0 = """
CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, code TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE versions (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, sha256 TEXT NOT NULL, saved_at REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, meta BLOB NOT NULL
);
CREATE INDEX versions_by_key ON versions (key, id);
CREATE TABLE keys (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, tier1 TEXT NOT NULL,
    package TEXT NOT NULL, branch TEXT NOT NULL, version_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL, deleted INTEGER NOT NULL
);
CREATE INDEX keys_by_space ON keys (tier1, package, branch);
CREATE VIRTUAL TABLE fts USING fts5 (name, docstring, signature, code, content='');
"""


def _write_layout_0(db: Path, saves: list[tuple[FunctionRecord, bool]]) -> None:
    """A registry file as the earlier layout wrote it: (record, is tombstone) in order."""
    con = sqlite3.connect(db)
    con.executescript(_LAYOUT_0)
    for record, tombstone in saves:
        meta = record.to_dict()
        del meta["code"]
        con.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (record.sha256, record.code))
        version_id = con.execute(
            "INSERT INTO versions (key, sha256, saved_at, deleted, meta) VALUES (?, ?, ?, ?, ?)",
            (record.key, record.sha256, record.saved_at, int(tombstone), json.dumps(meta)),
        ).lastrowid
        row = con.execute("SELECT id FROM keys WHERE key = ?", (record.key,)).fetchone()
        if row is not None and not tombstone:  # unindex the replaced live version
            old = con.execute(
                "SELECT v.meta, b.code FROM keys k JOIN versions v ON v.id = k.version_id "
                "JOIN blobs b ON b.sha256 = v.sha256 WHERE k.id = ? AND k.deleted = 0",
                row,
            ).fetchone()
            if old is not None:
                data = json.loads(old[0])
                con.execute(
                    "INSERT INTO fts (fts, rowid, name, docstring, signature, code) "
                    "VALUES ('delete', ?, ?, ?, ?, ?)",
                    (row[0], data["name"], data["docstring"] or "", data["signature"], old[1]),
                )
        con.execute(
            "INSERT INTO keys (key, tier1, package, branch, version_id, sha256, deleted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "version_id = excluded.version_id, sha256 = excluded.sha256, deleted = excluded.deleted",
            (
                record.key,
                record.tier1,
                record.package,
                record.branch,
                version_id,
                record.sha256,
                int(tombstone),
            ),
        )
        key_id = con.execute("SELECT id FROM keys WHERE key = ?", (record.key,)).fetchone()[0]
        if tombstone:
            con.execute(
                "INSERT INTO fts (fts, rowid, name, docstring, signature, code) "
                "VALUES ('delete', ?, ?, ?, ?, ?)",
                (key_id, record.name, record.docstring or "", record.signature, record.code),
            )
        else:
            con.execute(
                "INSERT INTO fts (rowid, name, docstring, signature, code) VALUES (?, ?, ?, ?, ?)",
                (key_id, record.name, record.docstring or "", record.signature, record.code),
            )
    con.commit()
    con.close()


def test_earlier_layout_is_migrated_on_open(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    v1 = make_record("to_pickle", doc="Save data to a pickle.").with_(
        saved_at=100.0, commit="abc123", extra={"source": "git"}, mtime_ns=7
    )
    v2 = make_record("to_pickle", code="def to_pickle(x=None):\n    return 2\n", doc="Pickled.")
    v2 = v2.with_(saved_at=200.0)
    slug = make_record("slug", doc="Slugs.").with_(saved_at=150.0)
    # the same code under another name, read with another docstring: kept per version
    alias = make_record("alias", code=v2.code, doc="Another reading.").with_(saved_at=250.0)
    _write_layout_0(
        db,
        [
            (v1, False),
            (slug, False),
            (v2, False),
            (alias, False),
            (slug.with_(saved_at=300.0), True),
        ],
    )

    store = SqliteStorage(db)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
    assert not {t for t in tables if t.startswith("v1_")}
    con.close()

    assert store.get(v1.key) == v2
    assert store.history(v1.key) == [v2, v1]
    assert store.get(v1.key, sha256=v1.sha256) == v1  # commit, extra, mtime_ns kept
    assert store.get(alias.key) == alias  # its own docstring, not its content's first
    assert store.get(slug.key) is None
    assert [r.deleted for r in store.history(slug.key)] == [True, False]
    assert store.get(slug.key, sha256=slug.sha256) == slug
    assert [r.name for r in store.list("sp_GlobalFunc")] == ["alias", "to_pickle"]
    # the contentless index carried over (key ids are kept) and stays exact
    assert [r.name for r in store.search("sp_GlobalFunc", "pickled")] == ["to_pickle"]
    assert store.search("sp_GlobalFunc", "slugs") == []
    replaced = alias.with_(code="def alias():\n    return 3\n", sha256="c" * 64, docstring="New.")
    assert store.put([replaced]) == [True]
    assert store.search("sp_GlobalFunc", "reading") == []
    assert store.search("sp_GlobalFunc", "new") == [replaced]
    assert store.put([slug.with_(saved_at=0.0)]) == [True]  # revived after the tombstone
    assert [r.name for r in store.search("sp_GlobalFunc", "slugs")] == ["slug"]
    store.close()

    store = SqliteStorage(db)  # opening again does not migrate again
    assert store.history(v1.key) == [v2, v1]
    assert len(store.history(slug.key)) == 3
    store.close()


def test_versions_keep_metadata_that_differs_from_their_contents(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "registry.db")
    first = make_record("f", doc="First reading.")
    store.put([first])
    second = make_record("g", code=first.code, doc="Second reading.")
    third = make_record("h", code=first.code, doc="First reading.")
    assert store.put([second, third]) == [True, True]
    stored = [store.get(r.key) for r in (first, second, third)]
    assert [r and r.with_(saved_at=0.0) for r in stored] == [first, second, third]
    con = sqlite3.connect(tmp_path / "registry.db")
    assert con.execute("SELECT count(*) FROM blobs").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM versions WHERE own_meta IS NOT NULL").fetchone() == (
        1,
    )
    con.close()
    store.close()
