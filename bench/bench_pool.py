"""Process-pool benchmark: our IsolatedExecutor against ``pebble.ProcessPool`` and ``loky``.

Issue 10's rule: adopt a kept library instead of our pool only if it keeps the
isolated/inline ratio within 10% of ours with the same crash and timeout behaviour. The
inline side is the same for every pool, so the ratio test is: the library's calls/s at
least 0.9x ours on the same workload. This script measures both halves.

Speed. The same functions (files in a temporary packages folder; our pool gets them from
a SQLite registry, as the HTTP server does, the libraries import them) run through:

- ``inline``: the function called in the caller's process (the reference, no pool);
- ``ours``: :class:`globalfunc.executor.IsolatedExecutor` (``function_concurrency`` = the
  number of workers, since the libraries have no per-function cap; memory cap as default);
- ``pebble``: ``pebble.ProcessPool(max_workers)``, ``schedule(fn, args, timeout=...)``;
- ``loky``: ``loky.get_reusable_executor(max_workers)``, ``submit(fn, *args)``.

Workloads: ``echo`` (returns its small dict argument) and ``spin`` (a loop calibrated to
about 1 ms of CPU in this process). Callers: 1 and 8 at once, in two styles: ``threads``
(each caller a thread making blocking calls) and ``asyncio`` (each caller a task on one
event loop awaiting the pool's future: the way the HTTP server calls; ours is then built on
that loop, the libraries' futures are wrapped with ``asyncio.wrap_future``). Every run
makes ``--calls`` calls; median calls/s and median p99 over ``--repeats`` runs, with the
configurations interleaved within each repeat.

Faults, each pool in turn with 2 workers, calls made the blocking way:

- crash: a function that calls ``os._exit(3)``: what the caller gets, after how long, and
  how long from that failure until the next call succeeds; then the same crash while 3
  calls of a 0.3 s function are in flight or queued: how many of those bystanders fail;
- hang: a function that sleeps 30 s, called with a 1 s timeout: what the caller gets and
  when, how long until the next call succeeds, and how long until 2 calls at once (one per
  worker) succeed: a worker still running the hung call leaves the pool a worker short;
  then the same hang with 3 bystanders.

    .venv/bin/python bench/bench_pool.py --repeats 5

Needs the ``bench`` extra (``pip install -e '.[bench]'``: pebble, loky). It does not
measure HTTP (bench/bench_http.py does) and does not change any pool's settings beyond
what is listed above.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import importlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "Bench"
SOURCES = {
    "echo": '''"""Return the argument."""


def echo(x: dict) -> dict:
    """Return ``x``."""
    return x
''',
    "spin": '''"""Burn CPU for a fixed number of loop steps."""


def spin(n: int = 1000) -> int:
    """Add up ``range(n)`` the slow way."""
    total = 0
    for i in range(n):
        total += i
    return total
''',
    "die": '''"""End the process at once."""

import os
import time


def die(delay: float = 0.0) -> None:
    """Exit without cleanup, after ``delay`` seconds."""
    time.sleep(delay)
    os._exit(3)
''',
    "nap": '''"""Sleep a while."""

import time


def nap(seconds: float = 0.3) -> float:
    """Sleep ``seconds``."""
    time.sleep(seconds)
    return seconds
''',
    "hang": '''"""Sleep long."""

import time


def hang(seconds: float = 30.0) -> float:
    """Sleep ``seconds``."""
    time.sleep(seconds)
    return seconds
''',
}
ECHO_ARG = {"time_str": "2024-02-15 11:11:11", "bias_hours": -8}


class Pool(Protocol):
    """One pool under test: blocking calls, awaitable calls, close."""

    name: str

    def call(self, fn: str, args: tuple[Any, ...], timeout: float | None = None) -> Any: ...

    async def acall(self, fn: str, args: tuple[Any, ...]) -> Any: ...

    def close(self) -> None: ...


def _function(fn: str) -> Callable[..., Any]:
    module = importlib.import_module(f"{PACKAGE}.{fn}")
    func: Callable[..., Any] = getattr(module, fn)
    return func


class Inline:
    name = "inline"

    def call(self, fn: str, args: tuple[Any, ...], timeout: float | None = None) -> Any:
        return _function(fn)(*args)

    async def acall(self, fn: str, args: tuple[Any, ...]) -> Any:
        return _function(fn)(*args)

    def close(self) -> None:
        pass


class Ours:
    """Called as the server's ``Invoker`` calls it: the record looked up once and passed
    with every call; awaitable calls send the arguments as parsed JSON (``encoded``)."""

    name = "ours"

    def __init__(self, registry_url: str, workers: int, loop: Any = None) -> None:
        from globalfunc.executor import IsolatedExecutor, WorkerTarget

        self.ex = IsolatedExecutor(
            WorkerTarget(registry_url=registry_url, branch="master"),
            workers=workers,
            function_concurrency=workers,
            loop=loop,
        )
        assert self.ex.registry is not None
        self.records = {fn: self.ex.registry.get(f"{PACKAGE}.{fn}") for fn in SOURCES}

    async def astart(self) -> None:
        await self.ex.astart()

    def call(self, fn: str, args: tuple[Any, ...], timeout: float | None = None) -> Any:
        raw = self.ex.call_sync_json(
            f"{PACKAGE}.{fn}", args, timeout=timeout, record=self.records[fn]
        )
        return orjson.loads(raw)

    async def acall(self, fn: str, args: tuple[Any, ...]) -> Any:
        return await self.ex.call_json(
            f"{PACKAGE}.{fn}", args, record=self.records[fn], encoded=True
        )

    def close(self) -> None:
        self.ex.close()


class Pebble:
    name = "pebble"

    def __init__(self, workers: int) -> None:
        import pebble

        self.pool = pebble.ProcessPool(max_workers=workers)

    def call(self, fn: str, args: tuple[Any, ...], timeout: float | None = None) -> Any:
        return self.pool.schedule(_function(fn), args, timeout=timeout).result()

    async def acall(self, fn: str, args: tuple[Any, ...]) -> Any:
        return await asyncio.wrap_future(self.pool.schedule(_function(fn), args))

    def close(self) -> None:
        self.pool.stop()
        self.pool.join(timeout=10)


class Loky:
    """One executor from ``loky.get_reusable_executor``, kept as a server would keep it;
    a crashed worker breaks it (every call in it fails), and the next submit, refused,
    takes a new one from ``get_reusable_executor``. (Calling ``get_reusable_executor``
    before every submit instead shuts the executor down and makes another whenever its
    work queue is shorter than ``max_workers``: with calls in flight that wait for them.)"""

    name = "loky"

    def __init__(self, workers: int) -> None:
        import loky

        self.workers = workers
        self.lock = threading.Lock()
        self.ex = loky.get_reusable_executor(max_workers=workers, timeout=3600)
        self.ex.submit(int).result()  # start the workers

    def submit(self, fn: str, args: tuple[Any, ...]) -> concurrent.futures.Future[Any]:
        import loky

        ex = self.ex
        try:
            return ex.submit(_function(fn), *args)
        except concurrent.futures.BrokenExecutor:
            with self.lock:
                if self.ex is ex:
                    self.ex = loky.get_reusable_executor(max_workers=self.workers, timeout=3600)
            return self.ex.submit(_function(fn), *args)

    def call(self, fn: str, args: tuple[Any, ...], timeout: float | None = None) -> Any:
        return self.submit(fn, args).result(timeout=timeout)

    async def acall(self, fn: str, args: tuple[Any, ...]) -> Any:
        return await asyncio.wrap_future(self.submit(fn, args))

    def close(self) -> None:
        self.ex.shutdown(wait=True, kill_workers=True)


# -- speed ---------------------------------------------------------------------------------
@dataclass
class Run:
    calls_per_s: float
    p99_ms: float


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def run_threads(pool: Pool, fn: str, args: tuple[Any, ...], callers: int, calls: int) -> Run:
    left = [calls]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def caller() -> None:
        mine: list[float] = []
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            t = time.perf_counter()
            try:
                pool.call(fn, args)
            except BaseException as exc:
                errors.append(exc)
                break
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{pool.name} {fn}: {errors[0]!r}")
    return Run(calls / wall, _p99(latencies))


async def run_tasks(pool: Pool, fn: str, args: tuple[Any, ...], callers: int, calls: int) -> Run:
    left = [calls]
    latencies: list[float] = []

    async def caller() -> None:
        while left[0] > 0:
            left[0] -= 1
            t = time.perf_counter()
            await pool.acall(fn, args)
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return Run(calls / (time.perf_counter() - start), _p99(latencies))


def calibrate_spin(target_s: float = 0.001) -> int:
    """Loop steps of ``spin`` that take ``target_s`` of CPU here (best of 5)."""
    spin = _function("spin")
    n = 10_000
    while True:
        best = min(_cpu_time(spin, n) for _ in range(5))
        if best > 0.0002:
            return max(1, round(n * target_s / best))
        n *= 4


def _cpu_time(fn: Callable[[int], Any], n: int) -> float:
    t = time.process_time()
    fn(n)
    return time.process_time() - t


def speed(args: argparse.Namespace, registry_url: str, spin_n: int) -> None:
    workloads = {"echo": (ECHO_ARG,), "spin": (spin_n,)}
    names = ["inline", "ours", "pebble", "loky"]
    results: dict[tuple[str, str, str, int], list[Run]] = {}
    for style in ("threads", "asyncio"):
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                if style == "threads":
                    pool = make_pool(name, registry_url, args.workers)
                    try:
                        for fn, fargs in workloads.items():
                            pool.call(fn, fargs)  # warm: code loaded in some worker
                            for callers in (1, 8):
                                run_threads(pool, fn, fargs, callers, args.calls // 10)
                                run = run_threads(pool, fn, fargs, callers, args.calls)
                                results.setdefault((style, name, fn, callers), []).append(run)
                    finally:
                        pool.close()
                else:
                    for key, run in asyncio.run(
                        _speed_async(name, registry_url, args, workloads)
                    ).items():
                        results.setdefault((style, *key), []).append(run)
            print(f"  {style} repeat {repeat + 1}/{args.repeats} done", flush=True)
    print()
    print("| callers | style | workload | pool | calls/s | vs ours | vs inline | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for style in ("threads", "asyncio"):
        for fn in workloads:
            for callers in (1, 8):
                med = {
                    n: (
                        statistics.median(r.calls_per_s for r in results[(style, n, fn, callers)]),
                        statistics.median(r.p99_ms for r in results[(style, n, fn, callers)]),
                    )
                    for n in names
                }
                for n in names:
                    rate, p99 = med[n]
                    print(
                        f"| {callers} | {style} | {fn} | {n} | {rate:.0f} | "
                        f"{rate / med['ours'][0]:.2f}x | {rate / med['inline'][0]:.3f}x | "
                        f"{p99:.2f} |"
                    )


async def _speed_async(
    name: str,
    registry_url: str,
    args: argparse.Namespace,
    workloads: dict[str, tuple[Any, ...]],
) -> dict[tuple[str, str, int], Run]:
    loop = asyncio.get_running_loop()
    if name == "ours":
        pool: Any = Ours(registry_url, args.workers, loop=loop)
        await pool.astart()
    else:
        pool = await loop.run_in_executor(None, make_pool, name, registry_url, args.workers)
    out: dict[tuple[str, str, int], Run] = {}
    try:
        for fn, fargs in workloads.items():
            await pool.acall(fn, fargs)
            for callers in (1, 8):
                await run_tasks(pool, fn, fargs, callers, args.calls // 10)
                out[(name, fn, callers)] = await run_tasks(pool, fn, fargs, callers, args.calls)
    finally:
        pool.close()
    return out


def make_pool(name: str, registry_url: str, workers: int) -> Pool:
    if name == "inline":
        return Inline()
    if name == "ours":
        return Ours(registry_url, workers)
    if name == "pebble":
        return Pebble(workers)
    return Loky(workers)


# -- faults --------------------------------------------------------------------------------
def _outcome(call: Callable[[], Any]) -> tuple[str, float]:
    t = time.perf_counter()
    try:
        value = call()
        what = f"returned {value!r}"[:60]
    except BaseException as exc:  # the point is to see what each pool raises
        what = f"{type(exc).__module__}.{type(exc).__name__}: {exc}".replace("\n", " ")[:150]
    return what, time.perf_counter() - t


def _until_ok(call: Callable[[], Any], limit: float) -> float | None:
    """Seconds until ``call`` succeeds (retrying failures), or None past ``limit``."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        try:
            call()
            return time.perf_counter() - start
        except Exception:
            time.sleep(0.005)
    return None


def _bystanders(pool: Pool, fault: str, fargs: tuple[Any, ...], timeout: float | None) -> str:
    """Start the fault, then 3 naps of 0.3 s while it runs (one on the other worker, two
    queued); how many of the naps fail."""
    if fault == "die":
        fargs = (0.2,)  # crash while the naps are running and queued
    with concurrent.futures.ThreadPoolExecutor(4) as threads:
        bad = threads.submit(pool.call, fault, fargs, timeout)
        time.sleep(0.05)  # the fault reaches a worker first
        others = [threads.submit(pool.call, "nap", (0.3,), 5.0) for _ in range(3)]
        failed = []
        for f in others:
            try:
                f.result(timeout=40)
            except BaseException as exc:
                failed.append(type(exc).__name__)
        with contextlib.suppress(BaseException):  # its own failure is reported above
            bad.result(timeout=40)
    return f"{len(failed)} of 3 failed" + (f" ({', '.join(sorted(set(failed)))})" if failed else "")


def _fmt(seconds: float | None, limit: float) -> str:
    return f"not within {limit:g} s" if seconds is None else f"{seconds * 1000:.0f} ms"


def faults(args: argparse.Namespace, registry_url: str) -> None:
    limit = 10.0
    print()
    print(
        "| pool | fault | the caller gets | after | next call ok after "
        "| 2 calls of 0.5 s at once done after (0.5 s: both workers serve; 1.0 s: one) "
        "| 3 bystanders |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in ("ours", "pebble", "loky"):
        for fault, fargs, timeout in (("die", (), None), ("hang", (30.0,), 1.0)):
            pool = make_pool(name, registry_url, 2)
            try:
                pool.call("echo", (ECHO_ARG,))
                what, took = _outcome(functools.partial(pool.call, fault, fargs, timeout))
                next_ok = _until_ok(functools.partial(pool.call, "echo", (ECHO_ARG,), 5.0), limit)

                def both(p: Pool = pool) -> None:
                    with concurrent.futures.ThreadPoolExecutor(2) as threads:
                        for f in [threads.submit(p.call, "nap", (0.5,), 5.0) for _ in range(2)]:
                            f.result(timeout=limit)

                t = time.perf_counter()
                try:
                    both()
                    capacity: float | None = time.perf_counter() - t
                except BaseException:
                    capacity = None
                if fault == "hang" and name == "loky":
                    # no per-call timeout: let the hung call end before the bystander test
                    pool.close()
                    pool = make_pool(name, registry_url, 2)
                side = _bystanders(pool, fault, fargs, timeout)
            finally:
                pool.close()
            print(
                f"| {name} | {fault}{' (1 s timeout)' if timeout else ''} | {what} | "
                f"{took * 1000:.0f} ms | {_fmt(next_ok, limit)} | {_fmt(capacity, limit)} | {side} |",
                flush=True,
            )


def build(folder: Path) -> str:
    """Write the functions as a package folder, register them, put them on ``sys.path``."""
    from globalfunc.registry import Registry
    from globalfunc.scan import Scanner

    packages = folder / "packages"
    (packages / PACKAGE).mkdir(parents=True)
    for fn, text in SOURCES.items():
        (packages / PACKAGE / f"{fn}.py").write_text(text)
    url = f"sqlite://{folder / 'registry.db'}"
    with Registry.open(url, branch="master") as registry:
        registry.save_many(list(Scanner(packages).scan().functions.values()))
    sys.path.insert(0, str(packages))  # pebble and loky import them from here, by name
    os.environ["PYTHONPATH"] = os.pathsep.join([str(packages), str(REPO)])
    return url


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="calls per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-faults", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    try:
        import loky
        import pebble
    except ImportError as exc:
        print(f"{exc.name} is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="gf-bench-pool-") as d:
        url = build(Path(d))
        spin_n = calibrate_spin()
        print(
            f"python {sys.version.split()[0]}, pebble {pebble.__version__}, loky "
            f"{loky.__version__}, {os.cpu_count()} CPUs, {args.workers} workers, "
            f"{args.calls} calls a run, spin n={spin_n} (~1 ms CPU), "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if not args.skip_speed:
            speed(args, url, spin_n)
        if not args.skip_faults:
            faults(args, url)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
