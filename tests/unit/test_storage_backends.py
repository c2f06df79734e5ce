"""Unit tests of the team storage that need no server: ranking, URLs, the RedisOrMongo
facade, and the tiered store's failure handling (fakeredis / mongomock)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import fakeredis
import mongomock
import pytest

from globalfunc.errors import (
    ConfigError,
    FunctionNotFound,
    InvalidName,
    InvalidRequest,
    StorageError,
    StorageUnavailable,
)
from globalfunc.search import rank, words
from globalfunc.storage import open_storage
from globalfunc.storage.base import combine_urls
from globalfunc.storage.mongo import MongoStorage
from globalfunc.storage.redis import RedisStorage, decode_latest
from globalfunc.storage.rom import RedisOrMongo, parse_space, verify_redis_var_name
from globalfunc.storage.tiered import TieredStorage
from tests.factories import make_record

KEY = "sp_GlobalFunc.Base_master.to_pickle"


# -- ranking -----------------------------------------------------------------------------
def test_words_split_identifiers_and_lower_case() -> None:
    assert words("to_pickle(Data=None)") == ["to", "pickle", "data", "none"]
    assert words("保存 数据") == ["保存", "数据"]


def test_rank_prefers_every_term_and_weighs_name_first() -> None:
    by_name = make_record("save_file", doc="Write bytes.")
    by_doc = make_record("write_bytes", doc="Save a file.")
    only_one = make_record("save_it", doc="Nothing else.")
    hits = rank([by_doc, only_one, by_name], "save file", 10)
    assert [r.name for r in hits] == ["save_file", "write_bytes"]
    assert [r.name for r in rank([by_name], "sav", 10)] == ["save_file"]  # word prefixes
    assert rank([by_name.with_(deleted=True)], "save", 10) == []
    assert rank([by_name], "", 10) == [] and rank([by_name], "save", 0) == []


# -- URLs --------------------------------------------------------------------------------
def test_combine_urls() -> None:
    assert combine_urls("mongodb://h/db") == "mongodb://h/db"
    assert (
        combine_urls("mongodb://h/db", "redis://c:6379/0")
        == "tiered+redis://c:6379/0|mongodb://h/db"
    )
    with pytest.raises(ConfigError, match="must be a Redis URL"):
        combine_urls("mongodb://h/db", "mongodb://other/db")
    with pytest.raises(ConfigError, match=r"\*\*\*"):
        combine_urls("tiered+redis://:pw@c|mongodb://h/db", "redis://c")
    with pytest.raises(ConfigError):
        combine_urls("", "redis://c")


def test_a_non_redis_cache_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot be a cache"):
        open_storage("tiered+sqlite://:memory:|sqlite://:memory:")


# -- redis value format ------------------------------------------------------------------
def test_a_corrupt_cached_value_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="malformed"):
        decode_latest(b"x" * 80)


# -- RedisOrMongo facade -----------------------------------------------------------------
@pytest.fixture
def tiered_fake() -> Iterator[TieredStorage]:
    store = TieredStorage(
        RedisStorage("redis://fake", client=fakeredis.FakeRedis()),
        MongoStorage("mongodb://mock/gf", client=mongomock.MongoClient(), database="gf"),
    )
    yield store
    store.close()


def test_rom_setx_getx_round_trip_in_the_seeds_shape(tiered_fake: TieredStorage) -> None:
    code = 'def inverse_time_str(time_str=None, bias_hours=0):\n    """Parse a time."""\n    return 1\n'
    value = {
        "meta": {
            "hash": "x",
            "modified_time": "2023-10-27 15:25:39",
            "line_count": 3,
            "name": "inverse_time_str.py",
        },
        "data": code,
    }
    rom = RedisOrMongo("sp_GlobalFunc.Base_master", tiered_fake, is_new=True)
    assert not verify_redis_var_name("sp_GlobalFunc.Base_master", tiered_fake)
    assert rom.setx("inverse_time_str", value, persist=True) is True
    assert rom.setx("inverse_time_str", value) is False  # unchanged
    got = rom.getx("inverse_time_str")
    assert got["data"] == code and got["meta"]["name"] == "inverse_time_str.py"
    assert got["meta"]["line_count"] == 3 and got["meta"]["modified_time"] == "2023-10-27 15:25:39"
    record = rom.getrecord("inverse_time_str")
    assert record.signature == "(time_str=None, bias_hours=0)"
    assert record.docstring == "Parse a time."
    assert record.key == "sp_GlobalFunc.Base_master.inverse_time_str"
    assert verify_redis_var_name("sp_GlobalFunc.Base_master", tiered_fake)
    assert rom.names() == ["inverse_time_str"] and rom.exists()
    assert [r.name for r in tiered_fake.search("sp_GlobalFunc", "parse time")] == [
        "inverse_time_str"
    ]


def test_rom_refuses_bad_input(tiered_fake: TieredStorage) -> None:
    rom = RedisOrMongo("sp_GlobalFunc.Base_master", tiered_fake)
    with pytest.raises(InvalidRequest, match="persist=False"):
        rom.setx("f", {"data": "def f():\n    pass\n"}, persist=False)
    with pytest.raises(InvalidRequest, match="scan value"):
        rom.setx("f", 42)
    with pytest.raises(InvalidName):
        rom.setx("__init__", {"data": ""})
    with pytest.raises(FunctionNotFound, match="'missing'"):
        rom.getx("missing")
    with pytest.raises(InvalidName, match="two parts"):
        parse_space("sp_GlobalFunc")
    assert parse_space("sp_GlobalFunc.my__pkg_feature+x") == (
        "sp_GlobalFunc",
        "my_pkg",
        "feature/x",
    )


# -- tiered failure handling with a fake Redis that goes away --------------------------------
@pytest.fixture
def flaky() -> Iterator[tuple[TieredStorage, fakeredis.FakeServer]]:
    server = fakeredis.FakeServer()
    store = TieredStorage(
        RedisStorage("redis://:hunter2@fake", client=fakeredis.FakeRedis(server=server)),
        MongoStorage("mongodb://mock/gf", client=mongomock.MongoClient(), database="gf"),
        retry_after=0.0,
    )
    yield store, server
    store.close()


def test_cache_outage_warns_once_and_recovers(
    flaky: tuple[TieredStorage, fakeredis.FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    store, server = flaky
    caplog.set_level(logging.INFO, logger="globalfunc.storage.tiered")
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    store.put([v1])
    server.connected = False
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    assert store.put([v2]) == [True]
    for _ in range(3):
        got = store.get(KEY)
        assert got is not None and got.sha256 == v2.sha256 and got.extra["source"] == "durable"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "hunter2" not in caplog.text
    server.connected = True  # back, still holding v1: the key written meanwhile is evicted
    got = store.get(KEY)
    assert got is not None and got.sha256 == v2.sha256 and got.extra["source"] == "durable"
    got = store.get(KEY)
    assert got is not None and got.sha256 == v2.sha256 and got.extra["source"] == "cache"
    assert not store.cache_down


def test_cache_never_goes_back_in_version(
    flaky: tuple[TieredStorage, fakeredis.FakeServer],
) -> None:
    store, _ = flaky
    v1 = make_record(code="def to_pickle():\n    return 1\n")
    v2 = make_record(code="def to_pickle():\n    return 2\n")
    store.put([v1])
    old = store.durable.get(KEY)
    store.put([v2])
    assert old is not None
    assert store.cache.cache_put([old]) == [False]  # a late refill of v1 is refused
    got = store.get(KEY)
    assert got is not None and got.sha256 == v2.sha256
    store.delete(KEY)
    assert store.cache.cache_put([old]) == [False]
    assert store.get(KEY) is None


def test_durable_down_means_no_write_and_cached_reads(
    flaky: tuple[TieredStorage, fakeredis.FakeServer],
) -> None:
    store, _ = flaky
    store.put([make_record()])

    def down(*args: object, **kwargs: object) -> object:
        raise StorageUnavailable("durable store down")

    store.durable.save = down  # type: ignore[method-assign]
    store.durable.get = down  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        store.put([make_record("other")])
    assert store.cache.cached("sp_GlobalFunc.Base_master.other") is None
    got = store.get(KEY)
    assert got is not None and got.extra["source"] == "cache"
    assert store.get(KEY, sha256=got.sha256) is not None  # by hash, from the cache
    with pytest.raises(StorageUnavailable):
        store.get(KEY, sha256="0" * 64)
