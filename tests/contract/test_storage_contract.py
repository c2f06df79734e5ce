"""The storage contract (see ``globalfunc.storage.base``), run against every backend."""

from __future__ import annotations

import time

from globalfunc.record import FunctionRecord
from globalfunc.storage import Storage
from tests.factories import make_record

KEY = "sp_GlobalFunc.Base_master.to_pickle"


def test_put_then_get_latest(storage: Storage) -> None:
    rec = make_record()
    assert storage.put([rec]) == [True]
    got = storage.get(KEY)
    assert got is not None
    assert got.code == rec.code and got.sha256 == rec.sha256
    assert got.saved_at > 0
    assert got.params == rec.params
    assert got.key == KEY


def test_get_missing_is_none(storage: Storage) -> None:
    assert storage.get(KEY) is None
    assert storage.history(KEY) == []


def test_unchanged_save_is_noop(storage: Storage) -> None:
    rec = make_record()
    assert storage.put([rec]) == [True]
    assert storage.put([rec]) == [False]
    assert len(storage.history(KEY)) == 1


def test_changed_save_adds_version_newest_first(storage: Storage) -> None:
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    storage.put([v1])
    time.sleep(0.002)
    storage.put([v2])
    hist = storage.history(KEY)
    assert [h.sha256 for h in hist] == [v2.sha256, v1.sha256]
    assert hist[0].saved_at >= hist[1].saved_at
    latest = storage.get(KEY)
    assert latest is not None and latest.sha256 == v2.sha256


def test_get_by_hash_returns_old_version(storage: Storage) -> None:
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    storage.put([v1])
    storage.put([v2])
    old = storage.get(KEY, sha256=v1.sha256)
    assert old is not None and old.code == v1.code
    assert storage.get(KEY, sha256="0" * 64) is None


def test_revert_to_old_content_is_a_new_version(storage: Storage) -> None:
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    storage.put([v1])
    storage.put([v2])
    assert storage.put([v1]) == [True]
    assert [h.sha256 for h in storage.history(KEY)] == [v1.sha256, v2.sha256, v1.sha256]


def test_put_many_mixed_new_and_unchanged(storage: Storage) -> None:
    a, b = make_record("a"), make_record("b")
    assert storage.put([a]) == [True]
    assert storage.put([a, b]) == [False, True]
    assert {r.name for r in storage.list("sp_GlobalFunc")} == {"a", "b"}


def test_put_many_same_key_twice_in_one_batch(storage: Storage) -> None:
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    assert storage.put([v1, v2, v2]) == [True, True, False]
    assert [h.sha256 for h in storage.history(KEY)] == [v2.sha256, v1.sha256]


def test_put_many_back_to_the_stored_content_in_one_batch(storage: Storage) -> None:
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    assert storage.put([v1]) == [True]
    assert storage.put([v1, v2, v1]) == [False, True, True]
    assert [h.sha256 for h in storage.history(KEY)] == [v1.sha256, v2.sha256, v1.sha256]
    latest = storage.get(KEY)
    assert latest is not None and latest.code == v1.code


def names(records: list[FunctionRecord]) -> list[str]:
    return sorted(r.name for r in records)


def test_list_keeps_look_alike_spaces_apart(storage: Storage) -> None:
    # names whose keys share a prefix: a / a_b / a.b / ab, tier1 sp / sp-2 / sp_2
    storage.put(
        [
            make_record("f", package="a"),
            make_record("g", package="a_b"),
            make_record("h", package="a.b"),
            make_record("i", package="ab"),
            make_record("j", package="a", branch="a/b.c"),
            make_record("k", package="a", tier1="sp"),
            make_record("l", package="a", tier1="sp-2"),
            make_record("m", package="a", tier1="sp_2"),
        ]
    )
    assert names(storage.list("sp_GlobalFunc", package="a")) == ["f", "j"]
    assert names(storage.list("sp_GlobalFunc", package="a_b")) == ["g"]
    assert names(storage.list("sp_GlobalFunc", package="a.b")) == ["h"]
    assert names(storage.list("sp_GlobalFunc", package="a", branch="master")) == ["f"]
    assert names(storage.list("sp_GlobalFunc", package="a", branch="a/b.c")) == ["j"]
    assert names(storage.list("sp_GlobalFunc", branch="a/b.c")) == ["j"]
    assert names(storage.list("sp_GlobalFunc")) == ["f", "g", "h", "i", "j"]
    assert [names(storage.list(t)) for t in ("sp", "sp-2", "sp_2")] == [["k"], ["l"], ["m"]]
    assert storage.list("sp_GlobalFunc", package="a_") == []
    assert storage.list("sp_GlobalFunc", package="") == []


def test_list_filters_by_package_and_branch(storage: Storage) -> None:
    storage.put(
        [
            make_record("a"),
            make_record("b", package="Other"),
            make_record("a", branch="feature/x"),
            make_record("z", tier1="sp_Else"),
        ]
    )
    assert [r.key for r in storage.list("sp_GlobalFunc", package="Base", branch="master")] == [
        "sp_GlobalFunc.Base_master.a"
    ]
    assert {r.branch for r in storage.list("sp_GlobalFunc", package="Base")} == {
        "master",
        "feature/x",
    }
    assert {r.package for r in storage.list("sp_GlobalFunc", branch="master")} == {"Base", "Other"}
    assert [r.name for r in storage.list("sp_Else")] == ["z"]
    assert storage.list("sp_Nothing") == []


def test_delete_is_a_tombstone_and_history_kept(storage: Storage) -> None:
    rec = make_record()
    storage.put([rec])
    assert storage.delete(KEY) is True
    assert storage.get(KEY) is None
    assert storage.delete(KEY) is False
    hist = storage.history(KEY)
    assert [h.deleted for h in hist] == [True, False]
    assert storage.list("sp_GlobalFunc") == []
    assert storage.get(KEY, sha256=rec.sha256) is not None
    # saving the same content again revives it
    assert storage.put([rec]) == [True]
    again = storage.get(KEY)
    assert again is not None and not again.deleted


def test_delete_missing_is_false(storage: Storage) -> None:
    assert storage.delete(KEY) is False


def test_search_ranks_name_and_docstring(storage: Storage) -> None:
    storage.put(
        [
            make_record("to_pickle", doc="Save data to a pickle file."),
            make_record("from_pickle", doc="Load a pickle file."),
            make_record("inverse_time_str", doc="Turn a time string into a timestamp."),
        ]
    )
    names = [r.name for r in storage.search("sp_GlobalFunc", "pickle")]
    assert set(names) == {"to_pickle", "from_pickle"}
    assert [r.name for r in storage.search("sp_GlobalFunc", "timestamp")] == ["inverse_time_str"]
    assert [r.name for r in storage.search("sp_GlobalFunc", "save pickle")] == ["to_pickle"]
    assert storage.search("sp_GlobalFunc", "nothing_matches_this") == []
    assert storage.search("sp_GlobalFunc", "") == []
    assert storage.search("sp_Else", "pickle") == []


def test_search_skips_deleted_and_sees_new_versions(storage: Storage) -> None:
    storage.put([make_record("to_pickle", doc="Save data to a pickle file.")])
    stored = 'def to_pickle():\n    """Store bytes."""\n'  # a scan finds the docstring
    storage.put([make_record("to_pickle", code=stored, doc="Store bytes.")])
    assert [r.name for r in storage.search("sp_GlobalFunc", "bytes")] == ["to_pickle"]
    assert storage.search("sp_GlobalFunc", "file") == []  # only in the old docstring
    storage.delete(KEY)
    assert storage.search("sp_GlobalFunc", "bytes") == []


def test_search_respects_limit(storage: Storage) -> None:
    storage.put([make_record(f"f{i}", doc="common words here") for i in range(10)])
    assert len(storage.search("sp_GlobalFunc", "common", limit=3)) == 3


def test_unicode_code_round_trips(storage: Storage) -> None:
    code = 'def to_pickle():\n    """保存数据 — ünïcödé."""\n    return "✓"\n'
    rec = make_record(code=code, doc="保存数据 — ünïcödé.")
    storage.put([rec])
    got = storage.get(KEY)
    assert got is not None and got.code == code
    assert got.verify() is got


def test_dirty_flag_is_kept_per_version(storage: Storage) -> None:
    clean = make_record(code="def to_pickle():\n    return 1\n")
    dirty = make_record(code="def to_pickle():\n    return 2\n").with_(dirty=True, commit="c0ffee")
    assert storage.put([clean]) == [True]
    assert storage.put([dirty]) == [True]
    latest = storage.get(clean.key)
    assert latest is not None and latest.dirty and latest.commit == "c0ffee"
    assert [h.dirty for h in storage.history(clean.key)] == [True, False]
    older = storage.get(clean.key, sha256=clean.sha256)
    assert older is not None and not older.dirty
