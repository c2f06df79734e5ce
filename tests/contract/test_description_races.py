"""Descriptions survive the two ways they were lost: a describe racing a save of the
same function on Redis, and a tiered store over a durable store without version
numbers (SQLite, a GlobalFunc server). Real redis-server, real SQLite file, a live
``gf serve`` for the http durable store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from globalfunc.registry import Registry
from globalfunc.storage import Storage, open_storage
from globalfunc.storage.redis import RedisStorage
from globalfunc.storage.tiered import TieredStorage
from tests.contract.conftest import HTTP_TOKEN
from tests.factories import make_record

V1 = "def slugify(text):\n    return text.lower()\n"
V2 = "def slugify(text):\n    return text.lower().replace(' ', '-')\n"


def _description(record: Any) -> str | None:
    value = record.extra.get("description")
    return value if isinstance(value, str) else None


def test_a_describe_between_a_saves_read_and_write_is_kept(redis_url: str) -> None:
    """The describe lands (through its own connection) right after the save has read the
    key's description and before it writes: the saved version must carry the new text."""
    saver, describer = RedisStorage(redis_url), RedisStorage(redis_url)
    try:
        v1 = make_record("slugify", V1, package="Text")
        assert saver.put([v1.with_(extra={"description": "old text"})]) == [True]
        real_read = saver._descriptions
        raced: list[int] = []

        def read_then_describe(keys: Any, client: Any = None) -> dict[str, str]:
            seen = real_read(keys, client=client)
            if not raced:
                raced.append(1)
                current = describer.get(v1.key)
                assert current is not None
                assert describer.put([current.with_(extra={"description": "new text"})]) == [True]
            return seen

        saver._descriptions = read_then_describe  # type: ignore[method-assign]
        v2 = make_record("slugify", V2, package="Text")
        assert saver.put([v2]) == [True]
        assert raced == [1]
        latest = describer.get(v2.key)
        assert latest is not None and latest.sha256 == v2.sha256
        assert _description(latest) == "new text"
        history = [(r.sha256, _description(r)) for r in describer.history(v2.key)]
        assert history[0] == (v2.sha256, "new text")
        assert (v1.sha256, "new text") in history  # the describe's own version
    finally:
        saver.close()
        describer.close()


def test_a_batch_whose_key_keeps_changing_gives_up_with_a_clear_error(redis_url: str) -> None:
    from globalfunc.errors import StorageError

    saver, other = RedisStorage(redis_url), RedisStorage(redis_url)
    try:
        v1 = make_record("slugify", V1, package="Text")
        saver.put([v1])
        real_read = saver._descriptions
        count = [0]

        def always_raced(keys: Any, client: Any = None) -> dict[str, str]:
            count[0] += 1
            other.put([v1.with_(extra={"description": f"text {count[0]}"})])
            return real_read(keys, client=client)

        saver._descriptions = always_raced  # type: ignore[method-assign]
        with pytest.raises(StorageError, match="kept changing under concurrent writers"):
            saver.put([make_record("slugify", V2, package="Text")])
        assert count[0] > 1
    finally:
        saver.close()
        other.close()


def _sqlite_durable(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage(f"sqlite://{tmp_path / 'durable.db'}")


def _http_durable(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    # the server's registry is the session Redis (flushed); the cache is Redis db 1
    return open_storage(request.getfixturevalue("registry_server"), token=HTTP_TOKEN)


@pytest.mark.parametrize("durable", [_sqlite_durable, _http_durable], ids=["sqlite", "http"])
def test_tiered_over_a_durable_store_without_version_numbers_keeps_descriptions(
    durable: Any, request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> None:
    cache = RedisStorage(redis_url.rsplit("/", 1)[0] + "/1")
    cache._redis.flushdb()
    store = TieredStorage(cache, durable(request, tmp_path))
    try:
        assert not hasattr(store.durable, "save")
        registry = Registry(store, tier1="sp_GlobalFunc")
        v1 = make_record("slugify", V1, package="Text")
        assert store.put([v1.with_(extra={"description": "make a url slug"})]) == [True]
        for _ in range(2):  # a miss, then whatever the cache holds
            got = store.get(v1.key)
            assert got is not None and _description(got) == "make a url slug"
        registry.describe("Text.slugify", "turn a title into a url slug")
        for _ in range(2):
            got = store.get(v1.key)
            assert got is not None and _description(got) == "turn a title into a url slug"
        v2 = make_record("slugify", V2, package="Text")
        assert store.put([v2]) == [True]  # a save gives no description: the key's is kept
        for _ in range(2):
            got = store.get(v2.key)
            assert got is not None and got.sha256 == v2.sha256
            assert _description(got) == "turn a title into a url slug"
        assert cache.cached(v2.key) is None or _description(cache.cached(v2.key)) == (
            "turn a title into a url slug"
        )
        found = store.search("sp_GlobalFunc", "title slug")
        assert [r.key for r in found][:1] == [v2.key]
    finally:
        store.close()
