"""Scan and save benchmark: our scanner and SQLite saves against plain baselines, one run.

    .venv/bin/python bench/bench_scan.py [--files 5000] [--repeat 5]

On a generated tree of function files (default 5,000), it measures, repeating each
measurement and reporting the median, each target against its baseline in the same run
(the targets decided in issue 9):

1. cold full scan (a new Scanner, no cache) vs walking the tree and reading and
   ``ast.parse``-ing each file (target <= 1.5x: a scanner that parses cannot beat the parse);
2. full rescan of known content (``scan(full=True)``: every file re-read and re-hashed,
   parses reused by content hash) vs walking, reading and md5-hashing each file
   (target <= 2.0x); also, without a target, the same in a new process that loads the
   persisted cache after every file was touched (as after a checkout);
3. the incremental rescan (nothing changed) vs the cold full scan (target >= 10x);
4. ``Registry.save_many`` of every function (one SQLite transaction) vs ``Registry.save``
   of each in turn (target >= 10x), each run into a new empty registry file created
   outside the timed part, both medians of ``--repeat`` runs. SQLite runs
   ``synchronous=FULL``, so every transaction is on disk when it returns; beside it the
   cost of one fsync on the same file system (a 4 KiB write and ``os.fsync``), which
   every single save pays at least once and save-many pays once in all.

Each ratio is printed on its own line as ``ratio <name> <value> (target ...)``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from globalfunc.registry import Registry
from globalfunc.scan import Scanner
from globalfunc.storage.sqlite import SqliteStorage

TEMPLATE = '''"""{name}: a generated benchmark function."""

import math
from collections import OrderedDict


def {name}(values: list[float] | None = None, scale: float = {i}.5, *, label: str = "x{i}") -> dict:
    """Scale ``values`` by ``scale`` and summarise them.

    Returns a dict with the label, the scaled values and their mean.
    """
    values = values or [1.0, 2.0, 3.0]
    scaled = [v * scale for v in values]
    mean = sum(scaled) / len(scaled)
    out = OrderedDict(label=label, scaled=scaled, mean=mean, root=math.sqrt(abs(mean)))
    return dict(out)
'''


def make_tree(root: Path, files: int, per_package: int = 100) -> None:
    for i in range(files):
        folder = root / f"Pkg{i // per_package:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"func_{i:05d}"
        (folder / f"{name}.py").write_text(TEMPLATE.format(name=name, i=i), encoding="utf-8")


def baseline_read_md5(root: Path) -> int:
    """Walk the same tree and only read + md5 each function file."""
    count = 0
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in names:
            if name.endswith(".py") and not name.startswith((".", "_")):
                with open(os.path.join(dirpath, name), "rb") as fh:
                    hashlib.md5(fh.read()).hexdigest()
                count += 1
    return count


def baseline_read_parse(root: Path) -> int:
    """Walk the same tree and only read + ``ast.parse`` each function file."""
    count = 0
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in names:
            if name.endswith(".py") and not name.startswith((".", "_")):
                with open(os.path.join(dirpath, name), "rb") as fh:
                    ast.parse(fh.read())
                count += 1
    return count


def fsync_cost(folder: Path, repeat: int = 200) -> float:
    """Median seconds of one 4 KiB write + ``os.fsync`` of a file in ``folder``."""
    path = folder / "fsync-probe"
    samples = []
    with open(path, "wb") as fh:
        for _ in range(repeat):
            fh.write(b"x" * 4096)
            fh.flush()
            t0 = time.perf_counter()
            os.fsync(fh.fileno())
            samples.append(time.perf_counter() - t0)
    path.unlink()
    return statistics.median(samples)


def timed(
    fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None
) -> float:
    samples = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def touch_all(root: Path) -> None:
    bump = time.time_ns()
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                os.utime(os.path.join(dirpath, name), ns=(bump, bump))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gf-bench-scan-"))
    registries: list[Registry] = []
    try:
        root = work / "packages"
        make_tree(root, args.files)
        baseline_read_md5(root)  # warm the page cache for everyone alike

        n = baseline_read_md5(root)
        assert n == args.files, n
        t_base = timed(lambda: baseline_read_md5(root), args.repeat)
        t_parse = timed(lambda: baseline_read_parse(root), args.repeat)
        t_full = timed(lambda: Scanner(root).scan(), args.repeat)

        scanner = Scanner(root)
        result = scanner.scan()
        assert len(result.functions) == args.files and not result.problems
        t_rescan = timed(scanner.scan, args.repeat)

        def full_rescan() -> None:
            r = scanner.scan(full=True)
            assert r.parsed == args.files and r.content_hits == args.files

        t_full_known = timed(full_rescan, args.repeat)

        cache = work / "scan-cache.json"
        Scanner(root, cache_file=cache).scan()

        def fresh_with_cache() -> None:
            r = Scanner(root, cache_file=cache).scan()
            assert r.content_hits == args.files, r.content_hits

        t_touched = timed(fresh_with_cache, args.repeat, setup=lambda: touch_all(root))

        infos = list(result.functions.values())

        def fresh_registry() -> None:
            """An empty registry file, created (schema and all) outside the timed part."""
            for old in registries:
                old.close()
            registries.clear()
            db = work / "registry.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            registries.append(Registry(SqliteStorage(db)))

        def save_many() -> None:
            assert all(r.added for r in registries[0].save_many(infos))

        def save_one_by_one() -> None:
            registry = registries[0]
            for info in infos:
                registry.save(info)

        t_many = timed(save_many, args.repeat, setup=fresh_registry)
        t_single = timed(save_one_by_one, args.repeat, setup=fresh_registry)
        t_fsync = fsync_cost(work)
    finally:
        for registry in registries:
            registry.close()
        shutil.rmtree(work, ignore_errors=True)

    per = 1e6 / args.files
    print(f"files {args.files}, median of {args.repeat} runs, python {sys.version.split()[0]}")
    print(f"baseline walk+read+md5      {t_base * 1e3:9.1f} ms  ({t_base * per:6.1f} us/file)")
    print(f"baseline walk+read+parse    {t_parse * 1e3:9.1f} ms  ({t_parse * per:6.1f} us/file)")
    print(f"full scan, cold             {t_full * 1e3:9.1f} ms  ({t_full * per:6.1f} us/file)")
    print(
        f"full scan, known content    {t_full_known * 1e3:9.1f} ms  ({t_full_known * per:6.1f} us/file)"
    )
    print(
        f"full scan, new process+cache{t_touched * 1e3:9.1f} ms  ({t_touched * per:6.1f} us/file)"
    )
    print(f"rescan, nothing changed     {t_rescan * 1e3:9.1f} ms  ({t_rescan * per:6.1f} us/file)")
    print(f"save-many, one transaction  {t_many * 1e3:9.1f} ms  ({t_many * per:6.1f} us/record)")
    print(
        f"save one at a time          {t_single * 1e3:9.1f} ms  ({t_single * per:6.1f} us/record)"
    )
    print(f"fsync of 4 KiB, same disk   {t_fsync * 1e6:9.1f} us  (once per single save)")
    print(f"ratio cold_scan_vs_read_parse {t_full / t_parse:.2f} (target <= 1.5)")
    print(f"ratio known_content_rescan_vs_read_md5 {t_full_known / t_base:.2f} (target <= 2.0)")
    print(f"ratio new_process_cached_vs_read_md5 {t_touched / t_base:.2f} (no target)")
    print(f"ratio incremental_rescan_speedup_vs_full_scan {t_full / t_rescan:.1f} (target >= 10)")
    print(f"ratio save_many_speedup_vs_single {t_single / t_many:.1f} (target >= 10)")
    print(
        f"ratio save_one_fsync_share {t_fsync / (t_single / args.files):.2f} "
        "(of a single save's time, one fsync; no target)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
