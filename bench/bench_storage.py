"""Benchmark the team storage against raw redis-py, on real servers it starts itself.

Measures, in one run (medians of ``--runs`` repetitions):

- the cache leg of a tiered save-many of N records (``RedisStorage.cache_put``: one Lua
  call per record, pipelined) against raw redis-py pipelined ``SET`` of the same payloads;
- N cache-hit ``TieredStorage.get`` calls against N raw ``GET`` round trips (p50 each);
- sqlite vs redis vs mongo throughput for save-many, get and search.

Targets (issue 3): cache leg <= 3x the raw pipeline; get p50 <= 1.5x a raw GET.
Usage: ``.venv/bin/python bench/bench_storage.py [--records 10000] [--runs 5]``.
This is not a test; it prints numbers and whether the targets were met.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from globalfunc.record import FunctionRecord  # noqa: E402
from globalfunc.storage import Storage, open_storage  # noqa: E402
from globalfunc.storage.redis import RedisStorage, encode_meta  # noqa: E402
from globalfunc.storage.tiered import TieredStorage  # noqa: E402
from tests.factories import make_record  # noqa: E402
from tests.servers import MongoServer, RedisServer  # noqa: E402

CODE = '''def f{i}(data=None, path="/tmp/x.pkl"):
    """Save {i} things to a pickle file and return the path ({i})."""
    import pickle

    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return path
'''


def records(n: int, tag: str = "") -> list[FunctionRecord]:
    return [
        make_record(f"f{i}", CODE.format(i=i) + tag, doc=f"Save {i} things to a pickle file.")
        for i in range(n)
    ]


def payload(record: FunctionRecord) -> bytes:
    """What the cache stores for a record: header, metadata, newline, code."""
    header = f"{record.sha256}0{1:012d}".encode()
    return header + encode_meta(record) + b"\n" + record.code.encode()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def p50_latency(fn: Callable[[str], object], keys: list[str]) -> float:
    samples = []
    for key in keys:
        start = time.perf_counter()
        fn(key)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--searches", type=int, default=20)
    args = parser.parse_args()
    n, runs = args.records, args.runs

    with tempfile.TemporaryDirectory(prefix="gf-bench-") as tmp:
        redis_server = RedisServer(Path(tmp) / "redis")
        mongo_server = MongoServer(Path(tmp) / "mongo")
        redis_server.start()
        mongo_server.start()
        try:
            return run(n, runs, args.searches, redis_server, mongo_server, Path(tmp))
        finally:
            redis_server.stop()
            mongo_server.stop()


def run(n: int, runs: int, searches: int, rs: RedisServer, ms: MongoServer, tmp: Path) -> int:
    raw = redis.Redis.from_url(rs.url)
    tiered = open_storage(f"tiered+{rs.url}|{ms.url}")
    assert isinstance(tiered, TieredStorage)
    cache: RedisStorage = tiered.cache
    print(f"records={n} runs={runs} redis={rs.url} mongo={ms.url} (nx-27017)")

    # the durable leg once: the cache leg is then replayed from the durable versions
    batch = records(n)
    start = time.perf_counter()
    stored = [s for s in tiered.durable.save(batch) if s is not None]  # type: ignore[attr-defined]
    durable_s = time.perf_counter() - start
    assert len(stored) == n
    payloads = [(f"raw:{r.key}", payload(r)) for r in stored]

    cache_leg, raw_set = [], []
    for _ in range(runs):
        raw.flushall()
        cache_leg.append(timed(lambda: cache.cache_put(stored)))
        raw.flushall()

        def raw_pipeline() -> None:
            pipe = raw.pipeline(transaction=False)
            for key, value in payloads:
                pipe.set(key, value)
            pipe.execute()

        raw_set.append(timed(raw_pipeline))
    cache_med, raw_med = statistics.median(cache_leg), statistics.median(raw_set)
    save_ratio = cache_med / raw_med

    # cache-hit gets: fill both, then time every call
    raw.flushall()
    cache.cache_put(stored)
    raw_pipeline_fill = raw.pipeline(transaction=False)
    for key, value in payloads:
        raw_pipeline_fill.set(key, value)
    raw_pipeline_fill.execute()
    keys = [r.key for r in stored]
    raw_keys = [k for k, _ in payloads]
    probe = tiered.get(keys[0])
    assert probe is not None and probe.extra["source"] == "cache"
    get_p50, raw_p50 = [], []
    for _ in range(runs):
        get_p50.append(p50_latency(tiered.get, keys))
        raw_p50.append(p50_latency(raw.get, raw_keys))
    get_med, raw_get_med = statistics.median(get_p50), statistics.median(raw_p50)
    get_ratio = get_med / raw_get_med

    print(f"tiered save-many durable leg (mongo): {durable_s:.3f} s for {n} records")
    print(f"tiered save-many cache leg: median {cache_med * 1000:.1f} ms")
    print(f"raw redis-py pipelined SET: median {raw_med * 1000:.1f} ms")
    print(f"ratio save-many cache leg / raw pipeline: {save_ratio:.2f}x (target <= 3.0x)")
    print(f"tiered get (cache hit) p50: {get_med * 1e6:.1f} us")
    print(f"raw GET p50: {raw_get_med * 1e6:.1f} us")
    print(f"ratio get p50 / raw GET p50: {get_ratio:.2f}x (target <= 1.5x)")

    # backend throughput: fresh store per run, medians
    print("backend throughput (ops/s, median of runs):")
    urls = {
        "sqlite": f"sqlite://{tmp / 'bench.db'}",
        "redis": rs.url,
        "mongo": ms.url,
    }
    gets = min(n, 2000)
    for name, url in urls.items():
        save_s, get_s, search_s = [], [], []
        for run_no in range(min(runs, 3)):
            raw.flushall()
            ms.flush()
            (tmp / "bench.db").unlink(missing_ok=True)
            store = open_storage(url)
            batch = records(n, tag=f"# run {run_no}\n")
            save_s.append(timed(lambda: store.put(batch)))  # noqa: B023
            get_s.append(timed(lambda: [store.get(r.key) for r in batch[:gets]]))  # noqa: B023
            queries = (["pickle", "save things", "f1", "path"] * searches)[:searches]
            hits: list[list[FunctionRecord]] = []

            def search_all(
                store: Storage = store,
                hits: list[list[FunctionRecord]] = hits,
                queries: list[str] = queries,
            ) -> None:
                hits.extend(store.search("sp_GlobalFunc", q, 20) for q in queries)

            search_s.append(timed(search_all))
            assert all(hits), f"{name}: a search found nothing"
            store.close()
        print(
            f"  {name:6s} save-many {n / statistics.median(save_s):10.0f}/s   "
            f"get {gets / statistics.median(get_s):8.0f}/s   "
            f"search {searches / statistics.median(search_s):8.1f}/s"
        )
    tiered.close()
    raw.close()
    met = save_ratio <= 3.0 and get_ratio <= 1.5
    print("targets met" if met else "targets NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
