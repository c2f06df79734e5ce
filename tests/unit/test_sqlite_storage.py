"""SQLite specifics beyond the shared contract: the layout, and refusing earlier layouts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from globalfunc.errors import StorageError
from globalfunc.storage.sqlite import LAYOUT, SqliteStorage
from tests.factories import make_record


def test_replacing_versions_keeps_the_index_exact(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "registry.db")
    for i in range(5):
        store.put([make_record("f", code=f"def f():\n    return 'word{i}'\n", doc=f"version{i}")])
    assert [r.name for r in store.search("sp_GlobalFunc", "version4")] == ["f"]
    for i in range(4):
        assert store.search("sp_GlobalFunc", f"version{i}") == []
        assert store.search("sp_GlobalFunc", f"word{i}") == []
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


@pytest.mark.parametrize("layout", [0, 2, 3])
def test_a_file_of_an_earlier_layout_is_refused_with_what_to_do(
    tmp_path: Path, layout: int
) -> None:
    db = tmp_path / "registry.db"
    con = sqlite3.connect(db)  # a development layout: tables, and its user_version
    con.execute("CREATE TABLE versions (id INTEGER PRIMARY KEY, meta BLOB)")
    con.execute(f"PRAGMA user_version = {layout}")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match=rf"layout {layout}.*rescan: gf save --all"):
        SqliteStorage(db)


def test_a_newer_layout_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {LAYOUT + 1}")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="upgrade GlobalFunc"):
        SqliteStorage(db)


def test_a_new_file_gets_the_current_layout_and_reopens(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = SqliteStorage(db)
    rec = make_record("f")
    store.put([rec.with_(dirty=True)])
    store.close()
    again = SqliteStorage(db)
    got = again.get(rec.key)
    assert got is not None and got.dirty
    assert again.delete(rec.key)
    assert [h.dirty for h in again.history(rec.key)] == [True, True]  # the tombstone keeps it
    again.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == LAYOUT
    con.close()
