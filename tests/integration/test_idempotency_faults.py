"""The idempotency record against a real redis-server that is paused (SIGSTOP) or slow.

- In a ``gf worker``: while its Redis is SIGSTOPped, a keyed call answers 503
  ``StorageUnavailable`` after the storage timeout, its function never ran, and the
  worker's log says so; meanwhile ``/healthz`` and keyless calls answer at once. After
  SIGCONT the same keys run, once, on that worker or another (the claims Redis took late
  are dropped by the worker that gave up on them).
- :class:`AsyncOutcomeRecord` on its own: an outcome is written with the next claim in one
  pipeline, or alone within ``linger``; a paused Redis fails a claim within the timeout,
  and the outcomes waiting with it fail too (nothing hangs); it writes to the URL's
  database, and after its Redis is stopped (503) and started again it connects anew.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
import urllib3

from globalfunc.errors import StorageUnavailable
from globalfunc.idempotency import AsyncOutcomeRecord, OutcomeRecord
from tests.integration.serve_support import REPO, ServerProcess, clean_env, make_repo
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

TIMEOUT = 1.0  # GF_STORAGE_TIMEOUT: how long a keyed call waits for a paused Redis


@pytest.fixture
def redis_server(own_redis: RedisServer) -> RedisServer:
    return own_redis


def _pause(server: RedisServer) -> int:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    return server.proc.pid


def test_a_paused_redis_holds_only_the_keyed_calls(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    root = make_repo(tmp_path / "packages", REPO / "tests" / "data" / "scale")
    env = clean_env(
        GF_WORKER_REDIS_URL=redis_server.url,
        GF_WORKER_HEARTBEAT="1",
        GF_STORAGE_TIMEOUT=str(TIMEOUT),
    )
    first = free_port()
    worker, other = (
        ServerProcess.gf(
            root, "worker", "--ports", f"{first}-{first + 40}", "--host-label", label, env=env
        ).start()
        for label in ("p", "q")
    )
    log = tmp_path / "runs.log"
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=30), retries=False)

    def call(seq: int, key: str | None, to: ServerProcess = worker) -> tuple[int, bytes, float]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        body = f'{{"seq": {seq}, "path": "{log}"}}'.encode()
        started = time.monotonic()
        answer = http.request(
            "POST", f"{to.base_url}/call/Logged.logged", body=body, headers=headers
        )
        return answer.status, answer.data, time.monotonic() - started

    try:
        assert call(0, "warm")[0] == 200  # the record's connection is made
        pid = _pause(redis_server)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            keyed = [pool.submit(call, 1, "k-paused"), pool.submit(call, 2, "k-paused-2")]
            time.sleep(0.2)  # both wait on the paused Redis now
            for seq in range(3, 8):  # keyless calls answer meanwhile
                status, _, took = call(seq, None)
                assert status == 200 and took < 0.5, (status, took)
            started = time.monotonic()
            health = http.request("GET", f"{worker.base_url}/healthz")
            assert health.status == 200 and time.monotonic() - started < 0.5
            assert not any(f.done() for f in keyed)  # still waiting on Redis
            for f in keyed:
                status, data, took = f.result(timeout=30)
                assert status == 503, data
                assert b"StorageUnavailable" in data and b"did not answer within 1s" in data
                assert TIMEOUT * 0.9 <= took < TIMEOUT + 2.0, took
        ran = {int(line.split()[0]) for line in log.read_text().splitlines()}
        assert ran == {0, 3, 4, 5, 6, 7}  # the refused keyed calls never ran
        assert "key k-paused: refused (503), nothing ran" in worker.log()
        os.kill(pid, signal.SIGCONT)
        # Redis took the claims it had buffered when it went on: the worker that gave up
        # on them drops them, so the same keys run once, there or on another worker
        assert call(1, "k-paused")[0] == 200
        assert call(1, "k-paused", other)[0] == 200
        status, _, took = call(2, "k-paused-2", other)
        assert status == 200 and took < 5.0, (status, took)
        lines = [int(line.split()[0]) for line in log.read_text().splitlines()]
        assert lines.count(1) == 1 and lines.count(2) == 1
    finally:
        if redis_server.proc is not None:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        worker.stop()
        other.stop()
        http.clear()


def test_outcomes_ride_with_the_next_claim_or_go_alone(redis_server: RedisServer) -> None:
    sync = OutcomeRecord(redis_server.url)

    async def scenario() -> None:
        record = AsyncOutcomeRecord(redis_server.url, timeout=2.0, linger=0.5)
        try:
            assert await record.claim("a", "w 1") is None
            written = record.record("a", 200, b"41")
            await asyncio.sleep(0.05)
            assert not written.done()  # waiting for a claim to share its round trip
            assert sync.look("a").running  # type: ignore[union-attr]
            assert await record.claim("b", "w 1") is None  # sends both
            assert written.done() and written.exception() is None
            seen = sync.look("a")
            assert seen is not None and seen.answer() == b"41"
            again = await record.claim("a", "w 2")  # another worker finds the outcome
            assert again is not None and not again.running and again.answer() == b"41"
            mine = await record.claim("b", "w 1")  # this worker's other request waits
            assert mine is not None and mine.running
            # alone: written within linger
            alone = record.record("b", 200, b"7")
            started = time.monotonic()
            await asyncio.wait_for(alone, 5)
            assert 0.4 <= time.monotonic() - started < 2.0
            assert sync.look("b").answer() == b"7"  # type: ignore[union-attr]
        finally:
            await record.aclose()

    try:
        asyncio.run(scenario())
    finally:
        sync.close()


def test_a_paused_redis_fails_a_claim_within_the_timeout(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        record = AsyncOutcomeRecord(redis_server.url, timeout=0.5, linger=5.0)
        try:
            assert await record.claim("x", "w 1") is None  # connected
            waiting = record.record("x", 200, b"1")
            pid = _pause(redis_server)
            try:
                started = time.monotonic()
                with pytest.raises(StorageUnavailable, match=r"did not answer within 0\.5s"):
                    await record.claim(uuid.uuid4().hex, "w 1")
                assert 0.4 <= time.monotonic() - started < 1.5
                assert isinstance(waiting.exception(), StorageUnavailable)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert await record.claim("y", "w 1") is None  # and the connection works again
        finally:
            await record.aclose()

    asyncio.run(scenario())


def test_the_record_uses_the_urls_database_and_reconnects_after_a_restart(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/3"
    port = redis_server.port

    async def claim(record: AsyncOutcomeRecord, key: str) -> object:
        return await record.claim(key, "w 1")

    async def scenario() -> None:
        nonlocal replacement
        record = AsyncOutcomeRecord(url, timeout=1.0, linger=5.0)
        try:
            assert await claim(record, "a") is None
            db3 = redis.Redis.from_url(url)
            db0 = redis.Redis.from_url(redis_server.url)
            try:
                name = "gf:idem:anonymous:a"  # a plain string key: the anonymous scope
                assert db3.get(name) == b"R" + b"0" * 32 + b"w 1" and db0.get(name) is None
            finally:
                db3.close()
                db0.close()
            waiting = record.record("a", 200, b"1")
            redis_server.stop()
            with pytest.raises(StorageUnavailable, match="unreachable"):
                await claim(record, "b")
            assert isinstance(waiting.exception(), StorageUnavailable)  # failed with it
            replacement = RedisServer(tmp_path / "redis-again", port=port)
            replacement.start()
            assert await claim(record, "b") is None  # a new connection, nothing left over
            assert await claim(record, "a") is None  # the new server holds nothing
        finally:
            await record.aclose()

    replacement: RedisServer | None = None
    try:
        asyncio.run(scenario())
    finally:
        if replacement is not None:
            replacement.stop()
