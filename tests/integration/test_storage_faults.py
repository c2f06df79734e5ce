"""Faults survived by the team storage, against real ``redis-server`` and nx-27017 servers."""

from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis as redis_driver

from globalfunc.errors import StorageUnavailable
from globalfunc.storage import open_storage
from globalfunc.storage.mongo import MongoStorage
from globalfunc.storage.redis import RedisStorage
from globalfunc.storage.tiered import TieredStorage
from tests.factories import make_record
from tests.servers import MongoServer, RedisServer

pytestmark = pytest.mark.integration

KEY = "sp_GlobalFunc.Base_master.to_pickle"


def version(i: int) -> str:
    return f"def to_pickle():\n    return {i}\n"


@pytest.fixture
def tiered(redis_url: str, mongo_url: str) -> Iterator[TieredStorage]:
    store = open_storage(f"tiered+{redis_url}|{mongo_url}", timeout=1.0)
    assert isinstance(store, TieredStorage)
    store.retry_after = 0.2
    try:
        yield store
    finally:
        store.close()


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "globalfunc.storage.tiered" and r.levelno == logging.WARNING
    ]


def test_redis_killed_mid_run_keeps_working_then_refills(
    tiered: TieredStorage, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="globalfunc.storage.tiered")
    a = make_record("a")
    assert tiered.put([a]) == [True]
    got = tiered.get(a.key)
    assert got is not None and got.extra["source"] == "cache"

    redis_server.kill()  # SIGKILL by pid: a crash, not a shutdown
    assert not redis_server.running()
    b = make_record("b")
    started = time.monotonic()
    assert tiered.put([b]) == [True]
    for _ in range(5):
        got_b = tiered.get(b.key)
        assert got_b is not None and got_b.extra["source"] == "durable"
        got_a = tiered.get(a.key)
        assert got_a is not None and got_a.code == a.code
        time.sleep(0.05)
    assert tiered.put([make_record("a", code=version(2))]) == [True]
    assert time.monotonic() - started < 5, "Redis being down must not stall every call"
    assert tiered.cache_down
    assert len(warnings_from(caplog)) == 1, "one warning per outage, not one per call"

    redis_server.start()  # same port, empty (no persistence)
    time.sleep(tiered.retry_after + 0.05)
    first = tiered.get(b.key)
    assert first is not None and first.extra["source"] == "durable"  # refills the cache
    again = tiered.get(b.key)
    assert again is not None and again.extra["source"] == "cache"
    latest_a = tiered.get(a.key)
    assert latest_a is not None and latest_a.code == version(2)
    assert not tiered.cache_down
    assert len(warnings_from(caplog)) == 1


def test_stale_cache_after_outage_is_evicted(
    redis_url: str, mongo_url: str, redis_server: RedisServer
) -> None:
    """A cache that comes back with old data (here: a write it missed) never serves it."""
    store = TieredStorage(
        RedisStorage(redis_url, timeout=1.0), MongoStorage(mongo_url), retry_after=0.1
    )
    try:
        v1, v2 = make_record(code=version(1)), make_record(code=version(2))
        store.put([v1])
        assert store.get(KEY) is not None
        # the cache misses the write of v2 (as if Redis were partitioned away) ...
        store.cache._redis.connection_pool.disconnect()
        real = store.cache.cache_put

        def unreachable(records: object, ttl: object = None) -> list[bool]:
            raise StorageUnavailable("simulated partition")

        store.cache.cache_put = unreachable  # type: ignore[method-assign]
        store.put([v2])
        store.cache.cache_put = real  # type: ignore[method-assign]
        # ... while still holding v1; once it answers again, the stale entry is evicted
        time.sleep(0.15)
        latest = store.get(KEY)
        assert latest is not None and latest.sha256 == v2.sha256
        latest = store.get(KEY)
        assert latest is not None and latest.sha256 == v2.sha256
        assert latest.extra["source"] == "cache"
    finally:
        store.close()


def test_mongo_unreachable_writes_fail_and_cached_reads_work(
    tiered: TieredStorage, mongo_server: MongoServer, redis_url: str
) -> None:
    a = make_record("a")
    tiered.put([a])
    mongo_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as err:
            tiered.put([make_record("b"), make_record("a", code=version(3))])
        assert time.monotonic() - started < 5
        assert err.value.http_status == 503
        # nothing landed in the cache alone
        raw = redis_driver.Redis.from_url(redis_url)
        try:
            assert raw.get(f"gf:latest:{make_record('b').key}") is None
        finally:
            raw.close()
        got = tiered.get(a.key)
        assert got is not None and got.code == a.code
        assert got.extra["source"] == "cache"
        with pytest.raises(StorageUnavailable):
            tiered.get("sp_GlobalFunc.Base_master.never_cached")
        with pytest.raises(StorageUnavailable):
            tiered.delete(a.key)
        assert tiered.get(a.key) is not None  # the failed delete did not reach the cache
    finally:
        mongo_server.start()
    assert tiered.put([make_record("b")]) == [True]


def test_closed_port_fails_fast_with_503() -> None:
    port = _closed_port()
    for url in (f"redis://127.0.0.1:{port}/0", f"mongodb://127.0.0.1:{port}/gf"):
        store = open_storage(url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.get(KEY)
        assert time.monotonic() - started < 3
        store.close()


class _Blackhole:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("scheme", ["redis", "mongodb"])
def test_a_silent_server_times_out_within_bound(scheme: str) -> None:
    hole = _Blackhole()
    try:
        store = open_storage(f"{scheme}://127.0.0.1:{hole.port}/gf", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.put([make_record()])
        elapsed = time.monotonic() - started
        assert elapsed < 3, f"{scheme} call took {elapsed:.1f}s with a 0.5s timeout"
        store.close()
    finally:
        hole.close()


def test_passwords_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = _closed_port()
    secret = "s3cr3t-pw"
    cache = open_storage(f"redis://:{secret}@127.0.0.1:{port}/0", timeout=0.3)
    durable = open_storage(f"mongodb://gf:{secret}@127.0.0.1:{port}/gf", timeout=0.3)
    tiered = TieredStorage(cache, durable)
    messages = []
    for call in (
        lambda: cache.get(KEY),
        lambda: durable.get(KEY),
        lambda: tiered.put([make_record()]),
    ):
        with pytest.raises(StorageUnavailable) as err:
            call()
        messages.append(str(err.value))
        messages.append(repr(err.value.details))
    assert all(secret not in m for m in messages), messages
    assert any("***" in m for m in messages)
    assert secret not in caplog.text
    tiered.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- concurrent writers ------------------------------------------------------------------
WRITERS = 4
VERSIONS = 8


def _write_versions(url: str, writer: int) -> None:
    store = open_storage(url, timeout=5.0)
    try:
        for i in range(VERSIONS):
            store.put([make_record(code=version(writer * 1000 + i))])
    finally:
        store.close()


def _check_all_versions_and_agreement(url: str, redis_url: str | None) -> None:
    store = open_storage(url)
    try:
        hist = store.history(KEY)
        expected = {
            make_record(code=version(w * 1000 + i)).sha256
            for w in range(WRITERS)
            for i in range(VERSIONS)
        }
        assert {h.sha256 for h in hist} == expected
        assert len(hist) == WRITERS * VERSIONS
        seqs = [h.extra["seq"] for h in hist]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
        latest = store.get(KEY)
        assert latest is not None and latest.sha256 == hist[0].sha256
        if redis_url is not None:
            assert isinstance(store, TieredStorage)
            cached = store.cache.cached(KEY)
            assert cached is not None and cached.sha256 == hist[0].sha256
            assert cached.extra["seq"] == hist[0].extra["seq"]
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["redis", "mongo", "tiered"])
def test_concurrent_writer_threads_lose_no_version(
    backend: str, redis_url: str, mongo_url: str
) -> None:
    url = {"redis": redis_url, "mongo": mongo_url, "tiered": f"tiered+{redis_url}|{mongo_url}"}[
        backend
    ]
    threads = [threading.Thread(target=_write_versions, args=(url, w)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    _check_all_versions_and_agreement(url, redis_url if backend == "tiered" else None)


@pytest.mark.parametrize("backend", ["redis", "mongo", "tiered"])
def test_concurrent_writer_processes_lose_no_version(
    backend: str, redis_url: str, mongo_url: str
) -> None:
    url = {"redis": redis_url, "mongo": mongo_url, "tiered": f"tiered+{redis_url}|{mongo_url}"}[
        backend
    ]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_versions, args=(url, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    _check_all_versions_and_agreement(url, redis_url if backend == "tiered" else None)
