"""Registry: save/get/history/list/search/delete and materialize, with the failure cases."""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from globalfunc.errors import FunctionNotFound, IntegrityError, InvalidName, PathEscape
from globalfunc.record import FunctionInfo, FunctionRecord, Param
from globalfunc.registry import Registry, SaveResult
from globalfunc.storage.sqlite import SqliteStorage
from tests.factories import make_record


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry.open(f"sqlite://{tmp_path / 'reg.db'}")
    yield reg
    reg.close()


def test_save_get_and_noop(registry: Registry) -> None:
    rec = make_record()
    assert registry.save(rec).added
    assert not registry.save(rec).added
    got = registry.get("Base.to_pickle")
    assert got.sha256 == rec.sha256
    assert registry.key("Base.to_pickle") == "sp_GlobalFunc.Base_master.to_pickle"


def test_save_many_results_in_order(registry: Registry) -> None:
    a, b = make_record("a"), make_record("b")
    assert registry.save(a) == SaveResult("sp_GlobalFunc.Base_master.a", a.sha256, True)
    results = registry.save_many([b, a, b])
    assert results == [
        SaveResult("sp_GlobalFunc.Base_master.b", b.sha256, True),
        SaveResult("sp_GlobalFunc.Base_master.a", a.sha256, False),
        SaveResult("sp_GlobalFunc.Base_master.b", b.sha256, False),
    ]
    assert type(results[0]) is SaveResult and hash(results[0]) == hash(results[0])
    with pytest.raises(AttributeError):
        results[0].added = False  # type: ignore[misc]


def test_get_unknown_and_invalid(registry: Registry) -> None:
    with pytest.raises(FunctionNotFound) as info:
        registry.get("Base.nope")
    assert info.value.http_status == 404 and "Base.nope" in info.value.message
    with pytest.raises(InvalidName):
        registry.get("Base.__class__")


def test_get_by_branch_and_hash_prefix(registry: Registry) -> None:
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    other = make_record(code="def to_pickle():\n    return 'x'\n", branch="feature/x")
    registry.save_many([v1])
    registry.save_many([v2, other])
    assert registry.get("Base.to_pickle").sha256 == v2.sha256
    assert registry.get("Base.to_pickle", branch="feature/x").sha256 == other.sha256
    assert registry.get("Base.to_pickle", sha256=v1.sha256[:10]).code == v1.code
    assert registry.get("Base.to_pickle", sha256=v1.sha256.upper()).code == v1.code
    with pytest.raises(InvalidName):
        registry.get("Base.to_pickle", sha256="abc")
    with pytest.raises(FunctionNotFound):
        registry.get("Base.to_pickle", sha256="f" * 12)
    hist = registry.history("Base.to_pickle")
    assert [h.sha256 for h in hist] == [v2.sha256, v1.sha256]


def test_list_packages_search_delete(registry: Registry) -> None:
    registry.save_many(
        [
            make_record("to_pickle", doc="Save to a pickle."),
            make_record("slug", package="Text", doc="Make a slug."),
        ]
    )
    assert [r.name for r in registry.list("Base")] == ["to_pickle"]
    assert registry.packages() == ["Base", "Text"]
    assert [r.name for r in registry.search("slug")] == ["slug"]
    with pytest.raises(InvalidName):
        registry.search("slug", limit=0)
    assert registry.delete("Text.slug")
    assert registry.packages() == ["Base"]
    with pytest.raises(FunctionNotFound):
        registry.get("Text.slug")
    assert [h.deleted for h in registry.history("Text.slug")] == [True, False]


def test_materialize_writes_file_and_init(registry: Registry, tmp_path: Path) -> None:
    registry.save_many([make_record("a"), make_record("b"), make_record("deep", package="pkg.sub")])
    out = tmp_path / "out"
    path = registry.materialize("Base.b", out)
    assert path == (out / "Base" / "b.py").resolve()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == registry.get("Base.b").sha256
    registry.materialize("Base.a", out)
    assert (out / "Base" / "__init__.py").read_text() == "from .a import a\nfrom .b import b\n"
    registry.materialize("pkg.sub.deep", out)
    assert (out / "pkg" / "__init__.py").read_text() == "from . import sub\n"
    assert (out / "pkg" / "sub" / "__init__.py").read_text() == "from .deep import deep\n"


def test_materialize_refuses_corrupted_record(tmp_path: Path) -> None:
    db = tmp_path / "reg.db"
    with Registry.open(f"sqlite://{db}") as reg:
        reg.save(make_record())
    con = sqlite3.connect(db)
    con.execute("UPDATE blobs SET code = code || '# tampered\n'")
    con.commit()
    con.close()
    out = tmp_path / "out"
    with Registry.open(f"sqlite://{db}") as reg, pytest.raises(IntegrityError) as info:
        reg.materialize("Base.to_pickle", out)
    assert "corrupted" in info.value.message
    assert not (out / "Base" / "to_pickle.py").exists()


def test_materialize_refuses_escape_through_symlink(registry: Registry, tmp_path: Path) -> None:
    registry.save(make_record())
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "Base").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathEscape):
        registry.materialize("Base.to_pickle", out)
    assert list(outside.iterdir()) == []


def _save_versions(db: str, tag: str, n: int) -> None:
    with Registry.open(f"sqlite://{db}") as reg:
        for i in range(n):
            reg.save(make_record(code=f"def to_pickle():\n    return '{tag}{i}'\n"))


def _info(name: str, code: str | None = None, **changes: object) -> FunctionInfo:
    record = make_record(name, code, doc=f"About {name}.")
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(FunctionInfo)}
    values.update(changes)
    return FunctionInfo(**values)  # type: ignore[arg-type]


def _infos(tag: str) -> list[FunctionInfo]:
    return [
        _info("a", mtime_ns=5, imports=("os",), is_async=True),
        _info(
            "b",
            params=(Param("x", "positional_only"), Param("y", "var_keyword", None, "Any")),
            returns="int",
            package="Pkg.sub",
        ),
        _info("c", code=f"def c():\n    return {tag!r}\n"),
        _info("a", code="def a():\n    return 2\n"),  # a second version in the same batch
    ]


def test_save_many_of_infos_stores_what_their_records_would(tmp_path: Path) -> None:
    fast = Registry(SqliteStorage(tmp_path / "fast.db"), branch="dev")
    slow = Registry(SqliteStorage(tmp_path / "slow.db"), branch="dev")
    assert hasattr(fast.storage, "put_infos")
    for tag in ("one", "two"):
        infos = _infos(tag)
        records = [FunctionRecord.from_info(i, branch="feat/x", commit="c0ffee") for i in infos]
        got = fast.save_many(infos, branch="feat/x", commit="c0ffee")
        assert got == slow.save_many(records)
        # the second batch: "a" goes back to its first version and on again, "c" changes
        assert [r.added for r in got] == ([True] * 4 if tag == "one" else [True, False, True, True])
    for name in ("Base.a", "Pkg.sub.b", "Base.c"):
        history = fast.history(name, branch="feat/x")
        assert [r.with_(saved_at=0.0) for r in history] == [
            r.with_(saved_at=0.0) for r in slow.history(name, branch="feat/x")
        ]
        assert all(r.saved_at > 0 and r.commit == "c0ffee" for r in history)
    assert [r.name for r in fast.search("about")] == [r.name for r in slow.search("about")]
    assert fast.save_many([]) == []
    fast.close()
    slow.close()


def test_save_many_of_infos_validates_every_name_before_writing(registry: Registry) -> None:
    with pytest.raises(InvalidName):
        registry.save_many([_info("a"), _info("__init__")])
    with pytest.raises(InvalidName):
        registry.save_many([_info("a")], branch="bad..branch")
    assert registry.list() == []


def test_save_many_mixed_infos_and_records(registry: Registry) -> None:
    record = make_record("r").with_(branch="other")
    got = registry.save_many([_info("a"), record])
    assert [r.key for r in got] == [
        "sp_GlobalFunc.Base_master.a",
        "sp_GlobalFunc.Base_other.r",
    ]
    assert registry.get("Base.r", branch="other").code == record.code


def _save_infos(db: str, tag: str, n: int) -> None:
    with Registry.open(f"sqlite://{db}") as reg:
        for i in range(n):
            reg.save_many([_info("f", code=f"def f():\n    return '{tag}{i}'\n"), _info(tag)])


def test_two_processes_saving_scanned_functions_lose_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "reg.db")
    Registry.open(f"sqlite://{db}").close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_save_infos, args=(db, tag, 25)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Registry.open(f"sqlite://{db}") as reg:
        codes = {h.code for h in reg.history("Base.f")}
        assert {r.name for r in reg.list()} == {"a", "b", "f"}
    expected = {f"def f():\n    return '{t}{i}'\n" for t in "ab" for i in range(25)}
    assert codes == expected


def test_two_processes_saving_the_same_function_lose_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "reg.db")
    Registry.open(f"sqlite://{db}").close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_save_versions, args=(db, tag, 25)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Registry.open(f"sqlite://{db}") as reg:
        codes = {h.code for h in reg.history("Base.to_pickle")}
    expected = {f"def to_pickle():\n    return '{t}{i}'\n" for t in "ab" for i in range(25)}
    assert codes == expected
