"""The tiered cache's staleness bound, across processes, with Redis paused (SIGSTOP).

Process A saves v1 (cached). Redis is paused while process B saves v2: the durable store
(a real MongoDB-wire server) takes it, the cache write times out, and B's save still
succeeds within the cache timeout. After SIGCONT, new processes may read v1 from the
cache, but never after the TTL (counted from when v1 was cached); deletes the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from globalfunc.storage.mongo import MongoStorage
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEY = "sp_GlobalFunc.Base_master.to_pickle"
TTL = 3.0  # seconds; the default (GF_CACHE_TTL) is 60
CACHE_TIMEOUT = 0.5

_PROCESS = """
import json, sys, time
from globalfunc.storage import open_storage
from tests.factories import make_record

url, action, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_storage(url, timeout=2.0, cache_ttl={ttl}, cache_timeout={timeout})
start = time.monotonic()
if action == "save":
    store.put([make_record(code=f"def to_pickle():\\n    return {{n}}\\n")])
    out = {{}}
elif action == "delete":
    out = {{"deleted": store.delete("{key}")}}
else:
    record = store.get("{key}")
    out = {{"code": record.code if record else None,
            "source": record.extra.get("source") if record else None}}
out["elapsed"] = time.monotonic() - start
print(json.dumps(out))
"""


def _run(url: str, action: str, n: int = 0) -> dict[str, Any]:
    script = _PROCESS.format(ttl=TTL, timeout=CACHE_TIMEOUT, key=KEY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, url, action, str(n)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _code(n: int) -> str:
    return f"def to_pickle():\n    return {n}\n"


@pytest.fixture
def paused_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")  # its own server: the session's is not paused
    server.start()
    try:
        yield server
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop()


def _until_fresh(url: str, expected: str | None, deadline: float) -> tuple[float, list[str]]:
    """Read in new processes until one reads ``expected``; when, and what was read before."""
    seen: list[str] = []
    while True:
        got = _run(url, "get")
        if got["code"] == expected:
            return time.monotonic(), seen
        seen.append(f"{got['code']!r} from {got['source']}")
        assert time.monotonic() < deadline, f"still stale after the TTL bound: {seen}"
        time.sleep(0.2)


def test_staleness_is_bounded_across_processes(paused_redis: RedisServer, mongo_url: str) -> None:
    url = f"tiered+{paused_redis.url}|{mongo_url}"
    durable = MongoStorage(mongo_url)
    try:
        _run(url, "save", 1)  # process A: v1, durable and cached
        cached_at = time.monotonic()
        first = _run(url, "get")
        assert (first["code"], first["source"]) == (_code(1), "cache")

        os.kill(paused_redis.pid, signal.SIGSTOP)
        b = _run(url, "save", 2)  # process B: durable takes it, the cache write times out
        assert b["elapsed"] < 4 * CACHE_TIMEOUT + 1.0, b  # bounded by the cache timeout
        latest = durable.get(KEY)
        assert latest is not None and latest.code == _code(2)
        os.kill(paused_redis.pid, signal.SIGCONT)

        fresh_at, stale = _until_fresh(url, _code(2), cached_at + TTL + 1.5)
        assert fresh_at <= cached_at + TTL + 1.5
        assert _run(url, "get")["code"] == _code(2)  # and it stays fresh (now cached again)
        print("stale reads before the bound:", stale)

        # deletes: v2 is cached now; B deletes it while Redis is paused
        assert _run(url, "get")["source"] == "cache"
        cached_at = time.monotonic()
        os.kill(paused_redis.pid, signal.SIGSTOP)
        d = _run(url, "delete")
        assert d["deleted"] and d["elapsed"] < 4 * CACHE_TIMEOUT + 1.0, d
        assert durable.get(KEY) is None
        os.kill(paused_redis.pid, signal.SIGCONT)
        _until_fresh(url, None, cached_at + TTL + 1.5)
    finally:
        durable.close()
