"""``GF_CACHE_TTL`` from the environment to the tiered cache, in ``gf`` and ``gf serve``.

A tiered store over a real ``redis-server`` and the MongoDB-wire server. With
``GF_CACHE_TTL=1`` a version written to the durable store behind the cache's back (the
write the cache missed, as when Redis was paused) is what ``gf show`` prints about a
second after the cache was filled; with the default (60 s) the cache keeps serving the old
one. Each ``gf`` runs as its own process, reading its settings from the environment.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from globalfunc.record import FunctionRecord
from globalfunc.scan import Scanner
from globalfunc.storage.mongo import MongoStorage
from tests.integration.serve_support import ServerProcess, clean_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEY = "sp_GlobalFunc.Base_master.slug"
CACHED = f"gf:latest:{KEY}"  # the Redis key of the cached latest version (storage/redis.py)
SHA = re.compile(r"sha256 ([0-9a-f]{64})")


def gf(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", "--root", str(root), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def shown_sha(root: Path, env: dict[str, str]) -> str:
    match = SHA.search(gf(root, env, "show", "Base.slug"))
    assert match is not None
    return match[1]


def write_behind_the_cache(root: Path, mongo_url: str, n: int) -> str:
    """Edit Base/slug.py and save the new version to the durable store only."""
    path = root / "Base" / "slug.py"
    path.write_text(path.read_text() + f"\n\n# edit {n}\n")
    info = Scanner(root).scan_file(path)
    durable = MongoStorage(mongo_url)
    try:
        assert durable.put([FunctionRecord.from_info(info, branch="master")]) == [True]
    finally:
        durable.close()
    return info.sha256


def tiered_env(root: Path, redis_url: str, mongo_url: str, **extra: str) -> dict[str, str]:
    return clean_env(GF_STORAGE_URL=mongo_url, GF_CACHE_URL=redis_url, GF_ROOT=str(root), **extra)


def test_gf_cache_ttl_bounds_what_gf_show_serves_stale(
    packages_repo: Path, redis_url: str, mongo_url: str
) -> None:
    cache = redis.Redis.from_url(redis_url)
    short = tiered_env(packages_repo, redis_url, mongo_url, GF_CACHE_TTL="1")
    gf(packages_repo, short, "save", "Base.slug")  # durable, then cached for 1 s
    filled = time.monotonic()
    assert cache.pttl(CACHED) <= 1000  # expiring within the second (-2: already gone)
    v2 = write_behind_the_cache(packages_repo, mongo_url, 2)
    seen = []
    while (sha := shown_sha(packages_repo, short)) != v2:
        seen.append(sha)
        assert time.monotonic() < filled + 4.0, f"still the cached version after 4 s: {seen}"
        time.sleep(0.1)
    print(f"stale reads before the 1 s TTL ran out: {len(seen)}")

    # The default keeps the entry a minute: the cache, refilled with v2 just now by a
    # process with the default setting, still serves v2 after v3 is written behind it.
    default = tiered_env(packages_repo, redis_url, mongo_url)
    cache.delete(CACHED)
    assert shown_sha(packages_repo, default) == v2  # a miss: read durably and cached
    assert 50_000 < cache.pttl(CACHED) <= 60_000
    v3 = write_behind_the_cache(packages_repo, mongo_url, 3)
    time.sleep(1.5)
    assert shown_sha(packages_repo, default) == v2 != v3


def test_gf_serve_opens_its_tiered_store_with_gf_cache_ttl(
    packages_repo: Path, redis_url: str, mongo_url: str
) -> None:
    cache = redis.Redis.from_url(redis_url)
    env = tiered_env(packages_repo, redis_url, mongo_url, GF_CACHE_TTL="5")
    server = ServerProcess.gf(packages_repo, "serve", "--port", "0", env=env).start()
    try:
        cache.delete(CACHED)  # what the save before serving cached: the server refills it
        with urllib.request.urlopen(f"{server.base_url}/functions/Base.slug", timeout=30) as reply:
            assert reply.status == 200
        assert 0 < cache.pttl(CACHED) <= 5000  # the default would be 60000
    finally:
        server.stop()
