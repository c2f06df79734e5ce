"""SQLite specifics beyond the shared contract: the full-text index layout and its rebuild."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
