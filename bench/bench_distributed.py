"""Scale-out benchmark: Ray maps, workers behind the client, the idempotency record.

In one run:

1. ``globalfunc.distributed.map("Base.safe_div", 10,000 items)`` on a local Ray vs plain
   Ray tasks calling the same Python function (imported from ``packages/Base``) directly,
   one task per item both ways (``batch=1``; target: the map at most 1.3x the plain
   tasks' time); and the map with its default batching, for reference.
2. Calls/s through ``GFClient.from_workers`` (``--threads`` calling threads) with two
   ``gf worker`` processes vs one (inline mode, a real redis-server).
3. The per-call cost of the idempotency record: sequential ``POST /call/Base.safe_div``
   to one worker with an ``Idempotency-Key`` (claim and record in Redis) vs without one
   (target: at most 10% of a call), alternating in rounds; medians. Beside it, the floor
   of that cost: one claim (``SET NX GET`` from an event loop through the worker's own
   ``AsyncOutcomeRecord``, i.e. ``redis.asyncio``), timed in the same rounds;
   the worker's and redis-server's CPU a call with and without a key; the load average.

    .venv/bin/python bench/bench_distributed.py
    .venv/bin/python bench/bench_distributed.py --items 2000 --seconds 3 --calls 1000
    .venv/bin/python bench/bench_distributed.py --only record --calls 2000

Prints one line per measurement and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from globalfunc.client import GFClient  # noqa: E402
from tests.integration.serve_support import ServerProcess, clean_env, make_repo  # noqa: E402
from tests.servers import RedisServer, free_port  # noqa: E402


def bench_ray(root: Path, items: int) -> None:
    import ray

    from gfbase import GFBase
    from globalfunc import distributed

    sys.path.insert(0, str(root))
    import importlib

    module = importlib.import_module("Base.safe_div")  # the same function, imported directly
    ray.cloudpickle.register_pickle_by_value(module)  # the Ray workers have no checkout
    safe_div = module.safe_div

    gfb = GFBase(root)
    gfb.save_all()
    registry = gfb.registry
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        kwargs = [{"numerator": i, "denominator": 7} for i in range(items)]
        plain = ray.remote(safe_div)
        # warm both paths (worker processes started, code compiled)
        ray.get([plain.remote(**k) for k in kwargs[:200]])
        distributed.map("Base.safe_div", kwargs[:200], registry=registry, progress=False)
        times: dict[str, list[float]] = {"plain": [], "map": [], "map-auto": []}
        for _ in range(3):
            t = time.perf_counter()
            expected = ray.get([plain.remote(**k) for k in kwargs])
            times["plain"].append(time.perf_counter() - t)
            t = time.perf_counter()
            got = distributed.map(
                "Base.safe_div", kwargs, registry=registry, batch=1, progress=False
            )
            times["map"].append(time.perf_counter() - t)
            assert got == expected
            t = time.perf_counter()
            got = distributed.map("Base.safe_div", kwargs, registry=registry, progress=False)
            times["map-auto"].append(time.perf_counter() - t)
            assert got == expected
        for label, ts in times.items():
            print(
                f"ray {label:13s} {items} items  median {statistics.median(ts):6.2f} s  "
                f"({items / statistics.median(ts):7.0f} items/s)  runs {[round(x, 2) for x in ts]}"
            )
        ratio = statistics.median(times["map"]) / statistics.median(times["plain"])
        print(f"ratio map / plain Ray tasks: {ratio:.2f}x (target <= 1.3x)")
    finally:
        ray.shutdown()
        gfb.close()


def start_workers(root: Path, redis_url: str, n: int) -> list[ServerProcess]:
    env = clean_env(GF_WORKER_REDIS_URL=redis_url, GF_MODE="inline")
    first = free_port()
    return [
        ServerProcess.gf(
            root, "worker", "--ports", f"{first}-{first + 40}", "--host-label", f"b{i}", env=env
        ).start()
        for i in range(n)
    ]


def calls_per_second(redis_url: str, threads: int, seconds: float) -> float:
    with GFClient.from_workers(redis_url) as client:
        for _ in range(50):
            client.call("Base.safe_div", numerator=1, denominator=3)
        stop = time.monotonic() + seconds
        counts = [0] * threads

        def loop(i: int) -> None:
            while time.monotonic() < stop:
                client.call("Base.safe_div", numerator=i, denominator=3)
                counts[i] += 1

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(loop, range(threads)))
        return sum(counts) / (time.monotonic() - started)


def bench_workers(root: Path, threads: int, seconds: float, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        redis.start()
        workers: list[ServerProcess] = []
        try:
            workers = start_workers(root, redis.url, 2)
            one, two = [], []
            for _ in range(3):
                workers[1].stop()  # one worker
                while len(GFClient.from_workers(redis.url).workers()) != 1:
                    time.sleep(0.05)
                one.append(calls_per_second(redis.url, threads, seconds))
                workers[1] = start_workers(root, redis.url, 1)[0]
                two.append(calls_per_second(redis.url, threads, seconds))
            print(f"client, 1 worker : median {statistics.median(one):6.0f} calls/s  {one}")
            print(f"client, 2 workers: median {statistics.median(two):6.0f} calls/s  {two}")
            print(f"ratio 2 workers / 1: {statistics.median(two) / statistics.median(one):.2f}x")
            assert redis.proc is not None
            pids = {"worker": workers[0].pid, "redis-server": redis.proc.pid}
            bench_record(workers[0].url, calls, redis.url, pids)
        finally:
            for w in workers:
                w.stop()
            redis.stop()


def redis_round_trip(redis_url: str, n: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process) per claim (``SET key value NX PX .. GET``) on an
    event loop, through the worker's own ``AsyncOutcomeRecord`` (``redis.asyncio``)."""
    from globalfunc.idempotency import AsyncOutcomeRecord

    async def run() -> tuple[float, float]:
        record = AsyncOutcomeRecord(redis_url, prefix="bench:")
        try:
            await record.claim("warm", "x 1")  # the connection is made
            t, c = time.perf_counter(), time.process_time()
            for _ in range(n):
                await record.claim(uuid.uuid4().hex, "x 1")
            return (time.perf_counter() - t) / n, (time.process_time() - c) / n
        finally:
            await record.aclose()

    return asyncio.run(run())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_record(
    url: str, calls: int, redis_url: str | None = None, pids: dict[str, int] | None = None
) -> None:
    import urllib3

    pool = urllib3.connection_from_url(url, maxsize=1)
    body = b'{"numerator": 1, "denominator": 3}'
    base = {"Content-Type": "application/json"}

    pids = pids or {}
    cpu: dict[tuple[str, bool], list[float]] = {(n, k): [] for n in pids for k in (False, True)}

    def run(keyed: bool) -> float:
        before = {n: cpu_seconds(pid) for n, pid in pids.items()}
        t = time.perf_counter()
        for _ in range(calls):
            headers = {**base, "Idempotency-Key": uuid.uuid4().hex} if keyed else base
            answer = pool.urlopen("POST", "/call/Base.safe_div", body=body, headers=headers)
            assert answer.status == 200, answer.data
        took = (time.perf_counter() - t) / calls
        for n, pid in pids.items():
            cpu[n, keyed].append((cpu_seconds(pid) - before[n]) / calls)
        return took

    load = os.getloadavg()[0]
    run(True), run(False)  # warm up
    for samples in cpu.values():
        samples.clear()
    keyed, plain = [], []
    trips: tuple[list[float], list[float]] = ([], [])
    for _ in range(5):
        plain.append(run(False))
        keyed.append(run(True))
        if redis_url is not None:
            wall, used = redis_round_trip(redis_url, calls)
            trips[0].append(wall)
            trips[1].append(used)
    k, p = statistics.median(keyed), statistics.median(plain)
    print(f"call without a key: {p * 1e6:7.0f} us   with a key (claim + record): {k * 1e6:7.0f} us")
    print(
        f"idempotency record cost: {(k - p) * 1e6:.0f} us a call = {(k - p) / p:.1%} (target <= 10%)"
    )
    walls, cpus = trips
    if walls:
        r = statistics.median(walls)
        print(
            f"one claim (SET NX GET, AsyncOutcomeRecord on redis.asyncio, as the worker sends "
            f"it): {r * 1e6:.0f} us = {r / p:.1%} of a call, "
            f"{statistics.median(cpus) * 1e6:.0f} us of it CPU in the caller  "
            f"rounds {[round(x * 1e6) for x in walls]}"
        )
    for n in pids:
        without, keyed_cpu = statistics.median(cpu[n, False]), statistics.median(cpu[n, True])
        print(
            f"CPU a call, {n}: {without * 1e6:5.0f} us without a key, "
            f"{keyed_cpu * 1e6:5.0f} us with one"
        )
    print(f"load average (1 min): {load:.1f} before, {os.getloadavg()[0]:.1f} after")


def bench_record_only(root: Path, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        redis.start()
        workers: list[ServerProcess] = []
        try:
            workers = start_workers(root, redis.url, 1)
            assert redis.proc is not None
            pids = {"worker": workers[0].pid, "redis-server": redis.proc.pid}
            bench_record(workers[0].url, calls, redis.url, pids)
        finally:
            for w in workers:
                w.stop()
            redis.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--only", choices=["record"], help="run one section only")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_repo(Path(tmp) / "packages", REPO / "packages")
        shutil.rmtree(root / ".globalfunc", ignore_errors=True)
        if a.only == "record":
            bench_record_only(root, a.calls)
            return
        if not a.skip_ray:
            bench_ray(root, a.items)
        bench_workers(root, a.threads, a.seconds, a.calls)


if __name__ == "__main__":
    main()
