"""Search on 50,000 records in SQLite and in the MongoDB-wire server (nx-27017): the
ranked search (``Storage.search``: an index narrows, ``globalfunc.search`` ranks) against
a plain substring scan of the same records in the same run (SQLite ``LIKE '%q%'`` over
name, metadata and code; a case-insensitive ``$regex`` over name, docstring and code).

Each record is a generated function of ~600 bytes whose names and docstring draw from a
vocabulary of 20,000 made-up words, so a query word is held by a few dozen records, as a
real function name is. Each of ``--runs`` runs times every query both ways (the ranked
search, then the scan); printed per run are the p50 and p90 of each and their ratio, and
at the end the median of the runs' p50s, their ratio (the target is 10x) and the load
average (the machine is shared: the ratio, taken in the same run, moves less than the
times).

    .venv/bin/python bench/bench_search.py [--records 50000] [--queries 40] [--runs 5]

Not a test: it starts its own nx-27017 and writes to a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from globalfunc.record import FunctionRecord, Param  # noqa: E402
from globalfunc.storage import open_storage  # noqa: E402
from globalfunc.storage.mongo import MongoStorage  # noqa: E402
from globalfunc.storage.sqlite import SqliteStorage  # noqa: E402
from tests.servers import MongoServer  # noqa: E402

TIER1 = "sp_Bench"
SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "va", "ze", "qu", "dr", "fl", "gr"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    out: set[str] = set()
    while len(out) < size:
        out.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 5))))
    return sorted(out)


def records(n: int, rng: random.Random, vocab: list[str]) -> list[FunctionRecord]:
    out = []
    for i in range(n):
        a, b, c = rng.sample(vocab, 3)
        name = f"{a}_{b}_{i}"
        doc = f"Compute the {a} of a {b} with {c} and return it."
        body = "\n".join(
            f"    {rng.choice(vocab)} = {rng.choice(vocab)}(value, {rng.randint(0, 99)})"
            for _ in range(10)
        )
        code = f'def {name}(value, {c}=None):\n    """{doc}"""\n{body}\n    return value\n'
        data = code.encode()
        out.append(
            FunctionRecord(
                package=f"P{i % 50}",
                name=name,
                code=code,
                md5=hashlib.md5(data).hexdigest(),
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                line_count=code.count("\n"),
                modified_time="2024-02-15 11:11:11",
                file_name=f"{name}.py",
                signature=f"(value, {c}=None)",
                params=(
                    Param("value", "positional_or_keyword"),
                    Param(c, "positional_or_keyword", "None"),
                ),
                docstring=doc,
                tier1=TIER1,
                branch="master",
            )
        )
    return out


def timed(fn: Callable[[str], Any], queries: list[str]) -> tuple[list[float], list[int]]:
    times, counts = [], []
    for q in queries:
        t0 = time.perf_counter()
        result = fn(q)
        times.append(time.perf_counter() - t0)
        counts.append(len(result))
    return times, counts


def repeated(
    label: str,
    runs: int,
    ranked_fn: Callable[[str], Any],
    scan_fn: Callable[[str], Any],
    queries: list[str],
) -> float:
    """``runs`` rounds of both timings; the median of the rounds' p50s and their ratio."""
    p50s_ranked, p50s_scan = [], []
    for i in range(runs):
        ranked, _ = timed(ranked_fn, queries)
        scan, hits = timed(scan_fn, queries)
        report(f"{label} run {i + 1}", ranked, scan, hits)
        p50s_ranked.append(statistics.median(ranked))
        p50s_scan.append(statistics.median(scan))
    r, s = statistics.median(p50s_ranked), statistics.median(p50s_scan)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{label}: median of {runs} runs: ranked p50 {r * 1000:.2f} ms, scan p50 "
        f"{s * 1000:.2f} ms, ratio {s / r:.1f}x (load average now {load})"
    )
    return s / r


def report(label: str, ranked: list[float], scan: list[float], hits: list[int]) -> float:
    p50r, p50s = statistics.median(ranked), statistics.median(scan)
    p90r = sorted(ranked)[int(len(ranked) * 0.9)]
    p90s = sorted(scan)[int(len(scan) * 0.9)]
    ratio = p50s / p50r
    print(
        f"{label}: ranked search p50 {p50r * 1000:.2f} ms (p90 {p90r * 1000:.2f}), "
        f"substring scan p50 {p50s * 1000:.2f} ms (p90 {p90s * 1000:.2f}), "
        f"ratio {ratio:.1f}x; scan hits per query median {statistics.median(hits):.0f}"
    )
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--only", choices=("sqlite", "mongo"), help="one backend only")
    ap.add_argument("--runs", type=int, default=5, help="rounds of timings (median taken)")
    ap.add_argument("--profile", action="store_true", help="cProfile the ranked searches")
    args = ap.parse_args()
    rng = random.Random(14)
    vocab = vocabulary(rng, 20_000)
    recs = records(args.records, rng, vocab)
    queries = [" ".join(rng.sample(vocab, 1)) for _ in range(args.queries // 2)]
    queries += [" ".join(rng.sample(vocab, 2)) for _ in range(args.queries - len(queries))]
    print(f"{len(recs)} records, {len(queries)} queries (one or two words)")
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "mongo":
            ratios["sqlite"] = bench_sqlite(Path(tmp), recs, queries, args.profile, args.runs)
        if args.only != "sqlite":
            ratios["mongo"] = bench_mongo(Path(tmp), recs, queries, args.runs)
    ok = all(r >= 10 for r in ratios.values())
    print("target (>= 10x on each):", "met" if ok else "NOT met")
    return 0 if ok else 1


def bench_sqlite(
    tmp: Path, recs: list[FunctionRecord], queries: list[str], profile: bool, runs: int
) -> float:
    if True:
        store = open_storage(f"sqlite://{tmp / 'bench.db'}")
        assert isinstance(store, SqliteStorage)
        t0 = time.perf_counter()
        for i in range(0, len(recs), 5000):
            store.put(recs[i : i + 5000])
        print(f"sqlite: stored in {time.perf_counter() - t0:.1f} s")
        db = store._db

        def like(q: str) -> list[Any]:
            pattern = f"%{q}%"
            return db.execute(
                "SELECT k.key, b.code FROM keys k JOIN versions v ON v.id = k.version_id "
                "JOIN blobs b ON b.id = v.blob_id WHERE k.tier1 = ? AND k.deleted = 0 AND "
                "(k.key LIKE ? OR b.meta LIKE ? OR b.code LIKE ?) LIMIT 20",
                (TIER1, pattern, pattern, pattern),
            ).fetchall()

        for q in queries[:3]:  # warm both
            store.search(TIER1, q)
            like(q)
        if profile:
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                timed(lambda q: store.search(TIER1, q), queries)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
        ratio = repeated("sqlite", runs, lambda q: store.search(TIER1, q), like, queries)
        store.close()
        return ratio


def bench_mongo(tmp: Path, recs: list[FunctionRecord], queries: list[str], runs: int) -> float:
    if True:
        server = MongoServer(tmp / "mongo")
        server.start()
        try:
            mongo = open_storage(server.url.replace("gf_test", "gf_bench"), timeout=60)
            assert isinstance(mongo, MongoStorage)
            t0 = time.perf_counter()
            for i in range(0, len(recs), 1000):
                mongo.put(recs[i : i + 1000])
            print(f"mongo (nx-27017): stored in {time.perf_counter() - t0:.1f} s")
            pointers = mongo._colls(TIER1)[0]

            def regex(q: str) -> list[Any]:
                rx = {"$regex": q, "$options": "i"}
                return list(
                    pointers.find(
                        {"deleted": False, "$or": [{"name": rx}, {"docstring": rx}, {"code": rx}]},
                        {"code": 1},
                    ).limit(20)
                )

            for q in queries[:3]:
                mongo.search(TIER1, q)
                regex(q)
            label = "mongo (nx-27017)"
            ratio = repeated(label, runs, lambda q: mongo.search(TIER1, q), regex, queries)
            mongo.close()
            return ratio
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
