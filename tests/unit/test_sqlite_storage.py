"""SQLite specifics beyond the shared contract: the table and index layouts, their migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from globalfunc.errors import StorageError
from globalfunc.record import FunctionRecord, Param
from globalfunc.storage.sqlite import LAYOUT, SqliteStorage
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
    assert con.execute("PRAGMA user_version").fetchone()[0] == LAYOUT
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


def _as_layout_2(meta: str | None) -> str | None:
    """Content metadata as layout 2 stored it: a JSON object, params as objects."""
    if meta is None:
        return None
    values = dict(zip(_FIELDS, json.loads(meta), strict=True))
    values["params"] = [dict(zip(_PARAM, p, strict=True)) for p in values["params"]]
    return json.dumps(values)


_FIELDS = ("md5", "size", "line_count", "signature", "params", "returns", "docstring")
_FIELDS += ("imports", "lineno", "is_async")
_PARAM = ("name", "kind", "default", "annotation")


def test_layout_2_is_migrated_on_open(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = SqliteStorage(db)
    first = make_record("f", doc="First reading.").with_(
        params=(Param("x", "positional_or_keyword", "None", "int"), Param("k", "keyword_only")),
        imports=("os", "json"),
        returns="int",
        is_async=True,
    )
    second = make_record("g", code=first.code, doc="Second reading.")  # keeps its own_meta
    assert store.put([first, second]) == [True, True]
    store.delete(second.key)
    before = {r.key: store.history(r.key) for r in (first, second)}
    store.close()
    con = sqlite3.connect(db)  # back to layout 2: the metadata as JSON objects
    con.create_function("as_layout_2", 1, _as_layout_2)
    con.execute("UPDATE blobs SET meta = as_layout_2(meta)")
    con.execute("UPDATE versions SET own_meta = as_layout_2(own_meta)")
    con.execute("CREATE INDEX keys_by_space ON keys (tier1, package, branch)")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    assert json.loads(con.execute("SELECT meta FROM blobs").fetchone()[0])["imports"] == [
        "os",
        "json",
    ]
    con.close()

    store = SqliteStorage(db)
    assert {key: store.history(key) for key in before} == before
    assert [r.name for r in store.search("sp_GlobalFunc", "first")] == ["f"]
    assert store.search("sp_GlobalFunc", "second") == []
    assert store.put([first]) == [False]
    assert store.put([second]) == [True]  # revived, and unindexed again cleanly below
    assert [r.name for r in store.search("sp_GlobalFunc", "second")] == ["g"]
    store.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == LAYOUT
    indexes = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "keys_by_space" not in indexes
    metas = [row[0] for row in con.execute("SELECT meta FROM blobs")]
    metas += [row[0] for row in con.execute("SELECT own_meta FROM versions") if row[0]]
    assert len(metas) >= 2 and all(isinstance(json.loads(m), list) for m in metas)
    con.close()


def test_metadata_written_as_objects_by_an_older_process_still_reads(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = SqliteStorage(db)
    rec = make_record("f", doc="Some words.")
    store.put([rec])
    con = sqlite3.connect(db)  # as a process still running the layout-2 code writes it
    con.create_function("as_layout_2", 1, _as_layout_2)
    con.execute("UPDATE blobs SET meta = as_layout_2(meta)")
    con.commit()
    con.close()
    got = store.get(rec.key)
    assert got is not None and got.with_(saved_at=0.0) == rec
    changed = rec.with_(code="def f():\n    return 2\n", sha256="d" * 64, docstring="Other.")
    assert store.put([changed]) == [True]
    assert store.search("sp_GlobalFunc", "some") == []  # the old entry was unindexed
    assert store.search("sp_GlobalFunc", "other") == [store.get(rec.key)]
    store.close()


def test_malformed_content_metadata_is_a_storage_error(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = SqliteStorage(db)
    rec = make_record("f")
    store.put([rec])
    con = sqlite3.connect(db)
    con.execute("UPDATE blobs SET meta = '[1, 2]'")
    con.commit()
    con.close()
    with pytest.raises(StorageError):
        store.get(rec.key)
    store.close()
