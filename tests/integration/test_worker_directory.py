"""The worker directory and heartbeat on a real redis-server: TTLs, lazy cleaning, outages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from globalfunc.errors import InvalidName, StorageUnavailable
from globalfunc.registry import Registry
from globalfunc.scan import Scanner
from globalfunc.workers import WorkerDirectory, WorkerInfo
from server.heartbeat import Heartbeat
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


def info(port: int, host: str = "m7") -> WorkerInfo:
    return WorkerInfo.new(
        host=host,
        version="v101",
        memory_gb=30,
        gpu_gb=0,
        port=port,
        url=f"http://127.0.0.1:{port}/",
    )


def eventually(check: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def directory(redis_url: str) -> Iterator[WorkerDirectory]:
    with WorkerDirectory(redis_url) as d:
        yield d


def test_register_list_deregister(directory: WorkerDirectory) -> None:
    a, b = info(26000), info(26001, host="m8")
    directory.register(b, ttl=30)
    directory.register(a, ttl=30)
    live = directory.live()
    assert [w.name for w in live] == ["m7_v101_30G_0G_26000", "m8_v101_30G_0G_26001"]
    assert live[0].url == "http://127.0.0.1:26000/" and live[0].age() < 5
    assert directory.get(a.name) == live[0]
    assert directory.deregister(a.name) is True
    assert directory.deregister(a.name) is False
    assert [w.name for w in directory.live()] == [b.name]
    with pytest.raises(InvalidName):
        directory.deregister("not a name")


def test_entries_expire_and_heartbeats_keep_them(directory: WorkerDirectory) -> None:
    short, kept = info(26000), info(26001)
    directory.register(short, ttl=0.2)
    first = directory.register(kept, ttl=1.0)
    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # heartbeats keep it well past its first TTL
        assert directory.heartbeat(kept.name, ttl=1.0) is True
        time.sleep(0.05)
    live = {w.name: w for w in directory.live()}
    assert short.name not in live and kept.name in live
    assert live[kept.name].last_seen > first.last_seen
    assert directory.heartbeat(short.name, ttl=1.0) is False  # gone: register again


def test_expired_names_are_cleaned_from_the_index(
    directory: WorkerDirectory, redis_url: str
) -> None:
    directory.register(info(26000), ttl=0.1)
    directory.register(info(26001), ttl=30)
    raw = redis.Redis.from_url(redis_url)
    assert raw.scard("gf:workers") == 2
    assert eventually(lambda: len(directory.live()) == 1)
    assert raw.smembers("gf:workers") == {b"m7_v101_30G_0G_26001"}
    raw.close()


def test_worker_keys_stay_apart_from_the_storage_keys(
    directory: WorkerDirectory, redis_url: str, base_packages: Path
) -> None:
    with Registry.open(redis_url, branch="master") as registry:
        registry.save_many(list(Scanner(base_packages).scan().functions.values()))
        directory.register(info(26000), ttl=30)
        raw = redis.Redis.from_url(redis_url)
        keys = {k.decode() for k in raw.keys("*")}
        raw.close()
        workers = {k for k in keys if k == "gf:workers" or k.startswith("gf:worker:")}
        assert workers == {"gf:workers", "gf:worker:m7_v101_30G_0G_26000"}
        assert all(k.split(":")[1] in {"latest", "hist", "blob", "space"} for k in keys - workers)
        latest = [k for k in keys if k.startswith("gf:latest:")]
        assert len(latest) == len(registry.list("Base")) > 0
        assert [w.name for w in directory.live()] == ["m7_v101_30G_0G_26000"]


def test_unreachable_redis_is_storage_unavailable() -> None:
    d = WorkerDirectory(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    for attempt in (d.ping, d.live, lambda: d.register(info(26000), ttl=5)):
        with pytest.raises(StorageUnavailable, match=r"worker directory\) is unreachable"):
            attempt()
    d.close()


def _last_seen(directory: WorkerDirectory, name: str) -> float:
    entry = directory.get(name)
    return entry.last_seen if entry is not None else 0.0


def test_heartbeat_thread_registers_beats_and_deregisters(directory: WorkerDirectory) -> None:
    beat = Heartbeat(directory, info(26000), interval=0.2).start()
    try:
        assert beat.ttl == pytest.approx(0.6)
        registered = directory.get(beat.name)
        assert registered is not None
        assert eventually(lambda: _last_seen(directory, beat.name) > registered.last_seen)
        time.sleep(1.0)  # longer than the TTL: the thread keeps it alive
        assert beat.name in [w.name for w in directory.live()]
    finally:
        beat.stop()
    assert directory.get(beat.name) is None


def test_a_redis_outage_is_one_warning_and_the_worker_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    directory = WorkerDirectory(server.url, timeout=0.5)
    beat = Heartbeat(directory, info(26000), interval=0.05).start()
    try:
        with caplog.at_level(logging.INFO, logger="server.heartbeat"):
            server.kill()
            time.sleep(0.6)  # a dozen failed beats
            server.start()  # empty: the entry must be written again
            assert eventually(lambda: directory.get(beat.name) is not None)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "heartbeat failed" in warnings[0].getMessage()
        messages = [r.getMessage() for r in caplog.records]
        assert any("registered again" in m for m in messages)
        assert any("heartbeat restored" in m for m in messages)
    finally:
        beat.stop()
        directory.close()
        server.stop()
