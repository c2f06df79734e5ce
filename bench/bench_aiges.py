"""Benchmark: once-exec round trips through our AIGES plugin vs the reference ``aiges==0.16.0``.

A round trip is ``wrapperOnceExec`` sent -> its result received on ``communicate``, driven
by the same loader-emulating client (:class:`server.aiges.client.LoaderClient`) against the
same trivial wrapper (``tests/data/aiges/echo``), sequentially and with 8 calls in flight.
The reference runs as ``python -m aiges.serve`` from its own venv under ``bench/.work/``
(created on first use with ``aiges==0.16.0 'pydantic<2.11' 'setuptools<81'``).

    .venv/bin/python bench/bench_aiges.py [--calls 2000] [--repeats 5] [--write]

Each repeat starts a fresh process per side; sides are interleaved (alternating which goes
first) so drift in machine load hits both. Prints calls/s, p50/p99 latency and the CPU
time per call of the plugin process and of the (shared) client, medians over repeats,
then each ratio on its own line; ``--write`` replaces the "AIGES plugin" section of
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.aiges.client import LoaderClient, loader_env  # noqa: E402

WORK = REPO / "bench" / ".work"
REF_VENV = WORK / "ref-venv"
WRAPPER = REPO / "tests" / "data" / "aiges" / "echo"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## AIGES plugin (bench/bench_aiges.py)"
IN_FLIGHT = 8


@dataclass
class Run:
    """One measurement: throughput, latency percentiles and CPU spent per call."""

    calls_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float = 0.0
    client_cpu_us: float = 0.0


def ensure_reference() -> Path:
    python = REF_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "aiges==0.16.0",
                "pydantic<2.11",
                "setuptools<81",
            ],
            check=True,
        )
    return python


def ours_command(workers: int) -> tuple[str, dict[str, str]]:
    cmd = f"{shlex.quote(sys.executable)} -m server.aiges --wrapper {shlex.quote(str(WRAPPER))} --workers {workers} --log-level WARNING"
    return cmd, loader_env(PYTHONPATH=str(REPO))


def reference_command() -> tuple[str, dict[str, str]]:
    python = ensure_reference()
    # The reference imports module ``wrapper`` from its working directory / PYTHONPATH.
    cmd = f"cd {shlex.quote(str(WRAPPER))} && {shlex.quote(str(python))} -m aiges.serve"
    env = loader_env(PYTHONPATH=str(WRAPPER))
    env.pop("VIRTUAL_ENV", None)
    return cmd, env


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its direct children.

    The plugin runs under ``bash -c``, so the Python process is usually a child of ``pid``.
    """
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def self_cpu() -> float:
    """CPU seconds used so far by this (client) process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(client: LoaderClient, calls: int, in_flight: int) -> Run:
    item = [client.text("text", "hello benchmark")]
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = calls // in_flight

    def worker() -> None:
        mine: list[float] = []
        for _ in range(per_thread):
            t0 = time.perf_counter()
            reply = client.once({}, item, timeout=30)
            mine.append(time.perf_counter() - t0)
            if reply.ret != 0 or reply.list[0].data != b"HELLO BENCHMARK":
                raise RuntimeError(f"bad reply: ret={reply.ret}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(in_flight)]
    pid = client.process.pid if client.process is not None else 0
    server_cpu0, client_cpu0 = (process_tree_cpu(pid) if pid else 0.0), self_cpu()
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    server_cpu = (process_tree_cpu(pid) if pid else 0.0) - server_cpu0
    client_cpu = self_cpu() - client_cpu0
    if len(latencies) != per_thread * in_flight:
        raise RuntimeError("some calls failed or hung")
    n = len(latencies)
    return Run(
        n / elapsed,
        percentile(latencies, 0.5) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        server_cpu / n * 1e6,
        client_cpu / n * 1e6,
    )


def bench_once(
    name: str, command: tuple[str, dict[str, str]], calls: int, repeat: int
) -> dict[int, Run]:
    """Start a fresh plugin, warm it up and measure sequential and ``IN_FLIGHT`` runs."""
    cmd, env = command
    runs: dict[int, Run] = {}
    client = LoaderClient.start(cmd, env=env, cwd=REPO, timeout=60)
    try:
        if client.init({}) != 0:
            raise RuntimeError(f"{name}: init failed:\n{client.stderr_text()[-2000:]}")
        client.schema("echo")
        client.open_communicate()
        measure(client, 200, 1)  # warm-up
        for flight in (1, IN_FLIGHT):
            run = runs[flight] = measure(client, calls, flight)
            print(
                f"  {name:9s} repeat {repeat} in-flight {flight}: {run.calls_per_s:6.0f} calls/s "
                f"p50 {run.p50_ms:6.2f} ms p99 {run.p99_ms:6.2f} ms "
                f"server cpu {run.server_cpu_us:4.0f} us/call client cpu {run.client_cpu_us:4.0f} us/call",
                flush=True,
            )
    finally:
        client.close()
        time.sleep(0.5)  # the reference always binds port 50055; let it go
    return runs


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.calls_per_s for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        statistics.median(r.server_cpu_us for r in runs),
        statistics.median(r.client_cpu_us for r in runs),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=2000, help="calls per measurement (default 2000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="fresh plugin processes per side (default 5)"
    )
    parser.add_argument("--workers", type=int, default=4, help="our plugin's --workers (default 4)")
    parser.add_argument(
        "--write", action="store_true", help="write the results into bench/RESULTS.md"
    )
    args = parser.parse_args(argv)

    sides = {"ours": ours_command(args.workers), "reference": reference_command()}
    results: dict[str, dict[int, list[Run]]] = {name: {1: [], IN_FLIGHT: []} for name in sides}
    for repeat in range(1, args.repeats + 1):
        # Interleaved, alternating which side goes first, so drift in machine load hits both.
        order = list(sides) if repeat % 2 else list(reversed(sides))
        for name in order:
            for flight, run in bench_once(name, sides[name], args.calls, repeat).items():
                results[name][flight].append(run)
    ours, ref = results["ours"], results["reference"]

    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python bench/bench_aiges.py --calls {args.calls} --repeats {args.repeats}"
        f" --workers {args.workers}{' --write' if args.write else ''}`",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "Round trip = `wrapperOnceExec` sent -> result received on `communicate`; same client "
        "(`server.aiges.client.LoaderClient`), same wrapper (`tests/data/aiges/echo`); reference "
        "= `python -m aiges.serve` from `aiges==0.16.0` (pydantic<2.11, setuptools<81). "
        "Medians over repeats, each repeat a fresh plugin process.",
        "",
        "| in flight | ours calls/s | reference calls/s | ratio (>= 2) | ours p99 ms "
        "| reference p99 ms | p99 ratio (<= 0.5) | server CPU us/call ours / ref "
        "| client CPU us/call vs ours / vs ref |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ok = True
    ratios: list[str] = []
    for flight in (1, IN_FLIGHT):
        o, r = median_run(ours[flight]), median_run(ref[flight])
        ratio, p99_ratio = o.calls_per_s / r.calls_per_s, o.p99_ms / r.p99_ms
        ok = ok and ratio >= 2 and p99_ratio <= 0.5
        lines.append(
            f"| {flight} | {o.calls_per_s:.0f} | {r.calls_per_s:.0f} | {ratio:.2f}x | "
            f"{o.p99_ms:.2f} | {r.p99_ms:.2f} | {p99_ratio:.2f}x | "
            f"{o.server_cpu_us:.0f} / {r.server_cpu_us:.0f} | "
            f"{o.client_cpu_us:.0f} / {r.client_cpu_us:.0f} |"
        )
        ratios.append(f"calls/s ratio, {flight} in flight: {ratio:.2f}x (target >= 2)")
        ratios.append(f"p99 ratio, {flight} in flight: {p99_ratio:.2f}x (target <= 0.5)")
    lines += ["", f"Targets (>= 2x calls/s, <= 0.5x p99) {'met' if ok else 'NOT met'}.", ""]
    text = "\n".join(lines)
    print()
    print(text)
    print("\n".join(ratios))
    if args.write:
        write_section(text)
    return 0


def write_section(text: str) -> None:
    """Replace (or append) only this benchmark's section of bench/RESULTS.md."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION in current:
        start = current.index(SECTION)
        nxt = current.find("\n## ", start + len(SECTION))
        current = current[:start] + text + (current[nxt + 1 :] if nxt != -1 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
