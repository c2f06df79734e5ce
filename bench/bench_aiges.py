"""Benchmark: once-exec round trips through our AIGES plugin vs the reference ``aiges==0.16.0``.

A round trip is ``wrapperOnceExec`` sent -> its result received on ``communicate``, against
the same trivial wrapper (``tests/data/aiges/echo``), sequentially and with 8 calls in
flight. Sides:

- ``grpcio``: ``python -m server.aiges --server python`` (our plugin on the grpcio server);
- ``native``: the same command with ``--server native`` (the C++ gRPC server);
- ``reference``: ``python -m aiges.serve`` from its own venv under ``bench/.work/``
  (created on first use with ``aiges==0.16.0 'pydantic<2.11' 'setuptools<81'``).

Every side is driven by the same clients:

- ``cpp`` (primary): ``native/build/aiges-bench-client``, a loader-emulating C++ client
  (``native/aiges/bench_client.cc``) that costs a few tens of microseconds of CPU per call,
  so it hardly competes with the plugin for the machine's cores. The Python side starts the
  plugin, does the handshake, ``wrapperInit`` and ``wrapperSchema``; the C++ client opens
  ``communicate`` and makes the calls. One plugin process per run, since ``communicate`` is
  opened once per process (the reference cannot take a second one: its first, cancelled
  stream keeps one of its two threads until a result arrives for it).
- ``python`` (secondary): :class:`server.aiges.client.LoaderClient`, ~500 us of CPU per call.

    .venv/bin/python bench/bench_aiges.py [--sides grpcio,native,reference] [--clients cpp,python]
                                          [--calls 2000] [--repeats 5] [--workers 4] [--write]

The native pieces are built first (``make -C native``). Each repeat starts fresh plugin
processes; the sides are interleaved (alternating which goes first) so drift in machine
load hits all of them. Prints calls/s, p50/p99 latency and the CPU time per call of the
plugin process and of the client, medians over repeats, then every ratio to the reference
on its own line; ``--write`` replaces the "AIGES plugin" section of ``bench/RESULTS.md``,
keeping its hand-written ``### Python-client history`` part.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.aiges.client import LoaderClient, PluginStartError, loader_env  # noqa: E402

WORK = REPO / "bench" / ".work"
REF_VENV = WORK / "ref-venv"
WRAPPER = REPO / "tests" / "data" / "aiges" / "echo"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## AIGES plugin (bench/bench_aiges.py)"
HISTORY = "### Python-client history"
NATIVE_DIR = REPO / "native"
CLIENT_BINARY = NATIVE_DIR / "build" / "aiges-bench-client"
NATIVE_MODULE = REPO / "server" / "aiges" / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}"
IN_FLIGHT = 8
FLIGHTS = (1, IN_FLIGHT)
WARMUP = 200
TEXT, EXPECT = "hello benchmark", "HELLO BENCHMARK"
WARM_LINE = "aiges-bench-client: warm-up done"
SIDES = ("grpcio", "native", "reference")
CLIENTS = ("cpp", "python")
CLIENT_TITLES = {
    "cpp": "cpp client (`native/aiges/bench_client.cc`: the callers are state machines on one "
    "thread and one gRPC completion queue; the primary measurement)",
    "python": "python client (`server.aiges.client.LoaderClient`)",
}


@dataclass
class Run:
    """One measurement: throughput, latency percentiles and CPU spent per call."""

    calls_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float = 0.0
    client_cpu_us: float = 0.0


# -- set-up -----------------------------------------------------------------------------
def build_native(sides: list[str], clients: list[str]) -> None:
    """``make`` the C++ client and/or the native module when a chosen side or client needs
    them (make itself skips what is up to date); exits with a message when that fails."""
    targets = []
    if "cpp" in clients:
        targets.append(str(CLIENT_BINARY.relative_to(NATIVE_DIR)))
    if "native" in sides and not NATIVE_MODULE.exists():  # built by `pip install` (setup.py)
        sys.exit(
            f"{NATIVE_MODULE.name} is not built: run scripts/system-deps.sh, then pip install -e ."
        )
    if not targets:
        return
    cmd = ["make", "-C", str(NATIVE_DIR), f"PYTHON={sys.executable}", *targets]
    print("building native pieces:", shlex.join(cmd), flush=True)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        sys.exit(f"cannot run make ({exc}); install build-essential (scripts/system-deps.sh)")
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        print(
            f"error: building {', '.join(targets)} failed (make exit {done.returncode}); "
            "see the output above. The native pieces need g++, pkg-config, the grpc++/protobuf "
            "dev packages (scripts/system-deps.sh) and pybind11.",
            file=sys.stderr,
        )
        sys.exit(1)


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


def ours_command(workers: int, native: bool = False) -> tuple[str, dict[str, str]]:
    cmd = (
        f"{shlex.quote(sys.executable)} -m server.aiges --server {'native' if native else 'python'} "
        f"--wrapper {shlex.quote(str(WRAPPER))} --workers {workers} --log-level WARNING"
    )
    return cmd, loader_env(PYTHONPATH=str(REPO))


def reference_command() -> tuple[str, dict[str, str]]:
    python = ensure_reference()
    # The reference imports module ``wrapper`` from its working directory / PYTHONPATH.
    cmd = f"cd {shlex.quote(str(WRAPPER))} && {shlex.quote(str(python))} -m aiges.serve"
    env = loader_env(PYTHONPATH=str(WRAPPER))
    env.pop("VIRTUAL_ENV", None)
    return cmd, env


def side_command(side: str, workers: int) -> tuple[str, dict[str, str]]:
    if side == "reference":
        return reference_command()
    return ours_command(workers, native=side == "native")


# -- measuring ----------------------------------------------------------------------------
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


def plugin_pid(client: LoaderClient) -> int:
    return client.process.pid if client.process is not None else 0


def measure_python(client: LoaderClient, calls: int, in_flight: int) -> Run:
    """``calls`` round trips through the Python ``LoaderClient``, ``in_flight`` threads."""
    item = [client.text("text", TEXT)]
    expect = EXPECT.encode()
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = calls // in_flight

    def worker() -> None:
        mine: list[float] = []
        for _ in range(per_thread):
            t0 = time.perf_counter()
            reply = client.once({}, item, timeout=30)
            mine.append(time.perf_counter() - t0)
            if reply.ret != 0 or reply.list[0].data != expect:
                raise RuntimeError(f"bad reply: ret={reply.ret}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(in_flight)]
    pid = plugin_pid(client)
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


def measure_cpp(client: LoaderClient, calls: int, in_flight: int) -> Run:
    """Run the C++ client against ``client``'s plugin (``communicate`` not yet opened).

    The client warms up, says so on stderr and waits for a line on stdin, so the plugin's
    CPU counters are read exactly around the measured calls.
    """
    handshake = client.handshake
    target = handshake.address if handshake.network == "tcp" else f"unix:{handshake.address}"
    cmd = [
        str(CLIENT_BINARY),
        *("--target", target, "--calls", str(calls), "--in-flight", str(in_flight)),
        *("--warmup", str(WARMUP), "--text", TEXT, "--expect", EXPECT, "--key", "text"),
        "--wait-after-warmup",
    ]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stderr is not None
    pid = plugin_pid(client)
    before: list[str] = []
    try:
        for line in proc.stderr:
            if line.strip() == WARM_LINE:
                break
            before.append(line)
        server_cpu0 = process_tree_cpu(pid) if pid else 0.0
        with contextlib.suppress(BrokenPipeError):  # it exited during the warm-up
            proc.stdin.write("go\n")
            proc.stdin.flush()  # communicate() closes it
        out, err = proc.communicate(timeout=600)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    server_cpu = (process_tree_cpu(pid) if pid else 0.0) - server_cpu0
    messages = "".join(before) + err
    if proc.returncode != 0:
        raise RuntimeError(
            f"aiges-bench-client exited with {proc.returncode}:\n{messages.strip()}\n"
            f"plugin stderr (tail):\n{client.stderr_text()[-2000:]}"
        )
    result = json.loads(out.strip().splitlines()[-1])
    n = int(result["calls"])
    return Run(
        float(result["calls_per_s"]),
        float(result["p50_ms"]),
        float(result["p99_ms"]),
        server_cpu / n * 1e6,
        float(result["client_cpu_us"]),
    )


def start_plugin(side: str, command: tuple[str, dict[str, str]]) -> LoaderClient:
    """Start a fresh plugin and run the loader's start-up calls (init, schema)."""
    cmd, env = command
    client = LoaderClient.start(cmd, env=env, cwd=REPO, timeout=60)
    try:
        if client.init({}) != 0:
            raise RuntimeError(f"{side}: init failed:\n{client.stderr_text()[-2000:]}")
        client.schema("echo")
    except BaseException:
        client.close()
        raise
    return client


def stop_plugin(client: LoaderClient) -> None:
    client.close()
    time.sleep(0.5)  # the reference always binds port 50055; let it go


def report(client_name: str, side: str, repeat: int, flight: int, run: Run) -> None:
    print(
        f"  {client_name:6s} {side:9s} repeat {repeat} in-flight {flight}: "
        f"{run.calls_per_s:6.0f} calls/s p50 {run.p50_ms:6.2f} ms p99 {run.p99_ms:6.2f} ms "
        f"plugin cpu {run.server_cpu_us:4.0f} us/call client cpu {run.client_cpu_us:4.0f} us/call",
        flush=True,
    )


def bench_side(
    client_name: str, side: str, command: tuple[str, dict[str, str]], calls: int, repeat: int
) -> dict[int, Run]:
    """One side, one client: sequential and ``IN_FLIGHT`` runs on fresh plugin processes."""
    runs: dict[int, Run] = {}
    if client_name == "cpp":
        for flight in FLIGHTS:  # the C++ client opens communicate itself: one plugin per run
            client = start_plugin(side, command)
            try:
                runs[flight] = measure_cpp(client, calls, flight)
            finally:
                stop_plugin(client)
            report(client_name, side, repeat, flight, runs[flight])
        return runs
    client = start_plugin(side, command)
    try:
        client.open_communicate()
        measure_python(client, WARMUP, 1)  # warm-up
        for flight in FLIGHTS:
            runs[flight] = measure_python(client, calls, flight)
            report(client_name, side, repeat, flight, runs[flight])
    finally:
        stop_plugin(client)
    return runs


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.calls_per_s for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        statistics.median(r.server_cpu_us for r in runs),
        statistics.median(r.client_cpu_us for r in runs),
    )


# -- reporting ----------------------------------------------------------------------------
def machine_line(sides: list[str], clients: list[str], load: float) -> str:
    parts = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"grpcio {importlib.metadata.version('grpcio')} (grpcio side, python client)",
    ]
    if "reference" in sides:
        ref = subprocess.run(
            [str(REF_VENV / "bin" / "python"), "-c", "import grpc; print(grpc.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        parts.append(f"grpcio {ref.stdout.strip() or '?'} (reference)")
    if "cpp" in clients or "native" in sides:
        grpcpp = subprocess.run(
            ["pkg-config", "--modversion", "grpc++"], capture_output=True, text=True, check=False
        )
        parts.append(f"grpc++ {grpcpp.stdout.strip() or '?'} (native side, cpp client)")
    return ", ".join(parts) + f"; load average {load:.1f} before the run."


def ratio_lines(
    medians: dict[tuple[str, str, int], Run], sides: list[str], clients: list[str]
) -> tuple[list[str], list[str]]:
    """Every side-vs-reference ratio on its own line, and the sides meeting both targets
    with the cpp client (or, without it, the first client)."""
    lines: list[str] = []
    met: list[str] = []
    if "reference" not in sides:
        return ["(no reference side: no ratios)"], met
    for client_name in clients:
        for side in sides:
            if side == "reference":
                continue
            ok = True
            for flight in FLIGHTS:
                run, ref = (
                    medians[client_name, side, flight],
                    medians[client_name, "reference", flight],
                )
                ratio, p99_ratio = run.calls_per_s / ref.calls_per_s, run.p99_ms / ref.p99_ms
                ok = ok and ratio >= 2 and p99_ratio <= 0.5
                lines.append(
                    f"{side} vs reference, {client_name} client, {flight} in flight: "
                    f"calls/s {ratio:.2f}x (target >= 2), p99 {p99_ratio:.2f}x (target <= 0.5)"
                )
            if ok and client_name == clients[0]:
                met.append(side)
    return lines, met


def tables(
    medians: dict[tuple[str, str, int], Run], sides: list[str], clients: list[str]
) -> list[str]:
    lines: list[str] = []
    for client_name in clients:
        lines += [
            f"**{CLIENT_TITLES[client_name]}**",
            "",
            "| in flight | side | calls/s | vs reference | p50 ms | p99 ms | p99 vs reference "
            "| plugin CPU us/call | client CPU us/call |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for flight in FLIGHTS:
            ref = medians.get((client_name, "reference", flight))
            for side in sides:
                run = medians[client_name, side, flight]
                vs = f"{run.calls_per_s / ref.calls_per_s:.2f}x" if ref else "-"
                p99_vs = f"{run.p99_ms / ref.p99_ms:.2f}x" if ref else "-"
                lines.append(
                    f"| {flight} | {side} | {run.calls_per_s:.0f} | {vs} | {run.p50_ms:.2f} | "
                    f"{run.p99_ms:.2f} | {p99_vs} | {run.server_cpu_us:.0f} | "
                    f"{run.client_cpu_us:.0f} |"
                )
        lines.append("")
    return lines


def write_section(text: str) -> None:
    """Replace only this benchmark's section of bench/RESULTS.md (or append it), keeping
    the section's hand-written ``### Python-client history`` part."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION in current:
        start = current.index(SECTION)
        nxt = current.find("\n## ", start + len(SECTION))
        end = nxt + 1 if nxt != -1 else len(current)
        old = current[start:end]
        kept = old[old.index(HISTORY) :].rstrip("\n") if HISTORY in old else ""
        new = text.rstrip("\n") + ("\n\n" + kept if kept else "") + "\n"
        current = current[:start] + new + ("\n" + current[end:] if end < len(current) else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current.rstrip("\n") + "\n")


def parse_list(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{what}: pick from {','.join(allowed)} (got {value!r})")
    return [v for v in allowed if v in chosen]  # canonical order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sides",
        type=lambda v: parse_list(v, SIDES, "--sides"),
        default=list(SIDES),
        help=f"comma-separated, from {','.join(SIDES)} (default all)",
    )
    parser.add_argument(
        "--clients",
        type=lambda v: parse_list(v, CLIENTS, "--clients"),
        default=list(CLIENTS),
        help=f"comma-separated, from {','.join(CLIENTS)} (default all; cpp is the primary)",
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
    sides: list[str] = args.sides
    clients: list[str] = args.clients

    build_native(sides, clients)
    load = os.getloadavg()[0]
    commands = {side: side_command(side, args.workers) for side in sides}
    results: dict[tuple[str, str, int], list[Run]] = {
        (c, s, f): [] for c in clients for s in sides for f in FLIGHTS
    }
    try:
        for repeat in range(1, args.repeats + 1):
            # Interleaved, alternating which side goes first, so drift in machine load hits all.
            order = sides if repeat % 2 else sides[::-1]
            for client_name in clients:
                for side in order:
                    runs = bench_side(client_name, side, commands[side], args.calls, repeat)
                    for flight, run in runs.items():
                        results[client_name, side, flight].append(run)
    except (RuntimeError, PluginStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    medians = {key: median_run(runs) for key, runs in results.items()}

    command = (
        f".venv/bin/python bench/bench_aiges.py --sides {','.join(sides)} "
        f"--clients {','.join(clients)} --calls {args.calls} --repeats {args.repeats} "
        f"--workers {args.workers}{' --write' if args.write else ''}"
    )
    ratios, met = ratio_lines(medians, sides, clients)
    lines = [
        SECTION,
        "",
        f"Command: `{command}`",
        machine_line(sides, clients, load),
        "Round trip = `wrapperOnceExec` sent -> its result received on `communicate`; same "
        "wrapper (`tests/data/aiges/echo`) and the same client for every side; grpcio = "
        "`python -m server.aiges --server python` (our plugin on grpcio), native = the same "
        "with `--server native` (our C++ gRPC server, what the plugin serves on by default "
        f"when it is built), reference = `python -m aiges.serve` from `aiges==0.16.0` (pydantic<2.11, "
        f"setuptools<81). {args.calls} calls per run after {WARMUP} warm-up calls, "
        f"sequentially and with {IN_FLIGHT} in flight; each run with the cpp client and each "
        "repeat with the python client on a fresh plugin process; sides interleaved, "
        "alternating which goes first. Medians over repeats. CPU columns: CPU time per "
        "measured call of the plugin process (from /proc) and of the client process (all "
        "threads, getrusage).",
        "",
        *tables(medians, sides, clients),
        *(f"- {line}" for line in ratios),
        "",
    ]
    if "reference" in sides:
        others = [s for s in sides if s != "reference"]
        missed = [s for s in others if s not in met]
        lines += [
            f"Targets (>= 2x calls/s and <= 0.5x p99 vs reference, both in-flight levels, "
            f"{clients[0]} client): met by {', '.join(met) or 'none'}"
            f"{'; NOT met by ' + ', '.join(missed) if missed else ''}.",
            "",
        ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
