"""HTTP benchmark: our tornado server vs the seed's handler vs FastAPI, isolated vs inline,
and two server processes vs one.

All servers call ``Base.inverse_time_str(time_str="2024-02-15 11:11:11", bias_hours=-8)``
through ``POST /gfgo/`` and run with ``TZ=UTC``. The load generator is ``wrk`` (one
thread, its own process, HTTP/1.1 keep-alive), ``--concurrency`` connections for
``--duration`` seconds per run, after a warm-up. Servers run one after another, in a
rotating order, ``--repeats`` times; medians are reported.

- ours-inline: ``server.serve.serve`` in ``inline`` mode, pydantic validation, metrics,
  and the access log written to a file (one ``FileHandler`` line per request, with
  ``logging.logThreads/logProcesses/logMultiprocessing`` off, as the logging HOWTO advises);
- seed: ``bench/seed_server.py`` (json.loads, getattr chain, call, json.dumps);
- fastapi: ``bench/fastapi_server.py`` under uvicorn (its access log on, to a file);
- ours-isolated: the same as ours-inline with ``--mode isolated`` (2 workers);
- ours-inline-p2: ours-inline with ``processes=2`` (``GF_PROCESSES=2``: two forked server
  processes sharing the socket).

For every run it also reads the CPU time wrk used (``getrusage`` of this process's
children) and the CPU time of the server's whole process tree (``/proc``: the server, its
forked processes, its workers), per request, and the load average before the run. On a
2-core machine wrk shares the cores with the server, so ``2 / (server + wrk CPU per
request)`` is the most two processes could serve; the script prints that ceiling beside
the measured two-process ratio.

Then the soak: at least ``--soak`` requests (100,000) at concurrency 64 against ours-inline
(consecutive 10 s wrk runs),
counting errors (wrk's non-2xx and socket errors, and the server's own metrics) and the
server's RSS after a warm-up vs after the soak.

    .venv/bin/python bench/bench_http.py --duration 10 --repeats 5
    .venv/bin/python bench/bench_http.py --servers ours-inline,ours-inline-p2 --soak 0

Needs ``wrk`` (``apt-get install -y wrk``). Prints one line per run and one per ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
BODY = json.dumps(
    {
        "pack_func": "Base.inverse_time_str",
        "kwargs": {"time_str": "2024-02-15 11:11:11", "bias_hours": -8},
    }
)
EXPECTED = b"1707966671"

LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
"""

OURS = """
import json, logging, sys
from pathlib import Path
args = json.loads(sys.argv[1])
# The logging HOWTO's optimisation: no thread/process names on records nobody prints.
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
handler = logging.FileHandler(args.pop("access_log"))
handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
access = logging.getLogger("globalfunc.access")
access.setLevel(logging.INFO)
access.addHandler(handler)
access.propagate = False
logging.basicConfig(level=logging.WARNING)
from server.serve import serve
serve(Path(args.pop("root")), **args)
"""


@dataclass
class Run:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    wrk_cpu_us: float = 0.0  # wrk's CPU time per request
    server_cpu_us: float = 0.0  # the server's process tree's CPU time per request
    main_cpu_us: float = 0.0  # the first server process's own CPU time per request
    load: float = 0.0  # 1-minute load average before the run
    other_cores: float = 0.0  # cores busy with neither the server nor wrk during the run


SERVERS = ["ours-inline", "seed", "fastapi", "ours-isolated", "ours-inline-p2"]
# (label, numerator server, denominator server, Median field, comparison, target): issue 10
CHECKS = [
    ("ours-inline / seed req/s", "ours-inline", "seed", "rps", ">=", 1.0),
    ("ours-inline / seed p99", "ours-inline", "seed", "p99", "<=", 1.0),
    ("ours-inline / fastapi req/s", "ours-inline", "fastapi", "rps", ">=", 1.2),
    ("ours-isolated / ours-inline req/s", "ours-isolated", "ours-inline", "rps", ">=", 0.85),
    ("ours-inline-p2 / ours-inline req/s", "ours-inline-p2", "ours-inline", "rps", ">=", 1.5),
]


@dataclass
class Median:
    """The medians of one server's runs."""

    rps: float
    p50: float
    p99: float
    server_cpu: float  # us per request
    wrk_cpu: float  # us per request
    other_cores: float  # cores other processes used during the runs

    @classmethod
    def of(cls, runs: list[Run]) -> Median:
        return cls(
            statistics.median(r.rps for r in runs),
            statistics.median(r.p50_ms for r in runs),
            statistics.median(r.p99_ms for r in runs),
            statistics.median(r.server_cpu_us for r in runs),
            statistics.median(r.wrk_cpu_us for r in runs),
            statistics.median(r.other_cores for r in runs),
        )

    @property
    def server_cores(self) -> float:
        return self.rps * self.server_cpu / 1e6

    @property
    def wrk_cores(self) -> float:
        return self.rps * self.wrk_cpu / 1e6


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_registry(folder: Path) -> str:
    sys.path.insert(0, str(REPO))
    from globalfunc.registry import Registry
    from globalfunc.scan import Scanner

    url = f"sqlite://{folder / 'registry.db'}"
    with Registry.open(url, branch="master") as registry:
        registry.save_many(list(Scanner(REPO / "packages").scan().functions.values()))
    return url


class Server:
    def __init__(self, name: str, argv: list[str], port: int, tmp: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}/gfgo/"
        env = {**os.environ, "TZ": "UTC", "PYTHONPATH": str(REPO)}
        self.out = open(tmp / f"{name}-{port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.out, env=env, cwd=REPO)
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(
                    self.url,
                    data=BODY.encode(),
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=5) as r:
                    got = r.read().strip()
                if got != EXPECTED:
                    raise SystemExit(f"{name} answered {got!r}, expected {EXPECTED!r}")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start; see {self.out.name}") from None
                time.sleep(0.1)

    def tree_cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user + system) of the server's first process, and of it with every live
        process under it (forked server processes, isolated workers)."""
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
        tree = {self.proc.pid}
        grew = True
        while grew:
            more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
            grew = bool(more)
            tree |= more
        tick = os.sysconf("SC_CLK_TCK")
        return ticks.get(self.proc.pid, 0) / tick, sum(ticks.get(p, 0) for p in tree) / tick

    def rss_kib(self) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def start(name: str, tmp: Path, storage_url: str) -> Server:
    port = free_port()
    if name.startswith("ours-"):
        args = {
            "root": str(REPO / "packages"),
            "storage_url": storage_url,
            "branch": "master",
            "host": "127.0.0.1",
            "port": port,
            "mode": name.split("-")[1],
            "processes": 2 if name.endswith("-p2") else 1,
            "workers": 2,
            "cache_dir": str(tmp / "cache"),
            "access_log": str(tmp / f"access-{port}.log"),
        }
        return Server(name, [PY, "-c", OURS, json.dumps(args)], port, tmp)
    script = {"seed": "bench/seed_server.py", "fastapi": "bench/fastapi_server.py"}[name]
    return Server(name, [PY, script, "--port", str(port), "--packages", "packages"], port, tmp)


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``), to tell how much of
    the machine other processes (other engineers' tests) took during a run."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, lua: Path, *, connections: int, duration: float) -> dict[str, float]:
    """One wrk run; ``wrk_cpu`` is the CPU time (user + system) wrk itself used, seconds."""
    env = dict(os.environ)
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(lua),
        url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**parse_wrk(out), "wrk_cpu": cpu}


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(out: str) -> dict[str, float]:
    def lat(label: str) -> float:
        m = re.search(rf"^\s+{label}%?\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise SystemExit(f"cannot parse wrk latency {label}:\n{out}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50": lat("50"), "p99": lat("99"), "requests": total, "errors": errors}


def measure(name: str, tmp: Path, url: str, lua: Path, args: argparse.Namespace) -> Run:
    server = start(name, tmp, url)
    try:
        wrk(server.url, lua, connections=args.concurrency, duration=args.warmup)
        load = os.getloadavg()[0]
        main_before, cpu_before = server.tree_cpu_seconds()
        busy_before, wall_before = machine_busy_seconds(), time.monotonic()
        r = wrk(server.url, lua, connections=args.concurrency, duration=args.duration)
        busy = machine_busy_seconds() - busy_before
        wall = time.monotonic() - wall_before
        main_after, cpu_after = server.tree_cpu_seconds()
        server_cpu, main_cpu = cpu_after - cpu_before, main_after - main_before
    finally:
        server.stop()
    n = max(1, int(r["requests"]))
    run = Run(
        name,
        r["rps"],
        r["p50"],
        r["p99"],
        int(r["requests"]),
        int(r["errors"]),
        wrk_cpu_us=r["wrk_cpu"] / n * 1e6,
        server_cpu_us=server_cpu / n * 1e6,
        main_cpu_us=main_cpu / n * 1e6,
        load=load,
        other_cores=max(0.0, (busy - server_cpu - r["wrk_cpu"]) / wall),
    )
    print(
        f"run {name:14s} {run.rps:9.0f} req/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
        f"  ({run.requests} requests, {run.errors} errors)  CPU/req server "
        f"{run.server_cpu_us:4.0f} us (first process {run.main_cpu_us:4.0f}) "
        f"wrk {run.wrk_cpu_us:3.0f} us  load {load:.2f}, other processes {run.other_cores:.2f} cores",
        flush=True,
    )
    return run


def soak(tmp: Path, url: str, lua: Path, args: argparse.Namespace) -> dict[str, float]:
    """``args.soak`` requests at concurrency 64, as back-to-back 10 s wrk runs (wrk can only
    stop on time), after a 5 s warm-up; RSS is read after the warm-up and at the end."""
    server = start("ours-inline", tmp, url)
    try:
        wrk(server.url, lua, connections=64, duration=5)  # warm-up
        base = server.rss_kib()
        total = {"requests": 0.0, "errors": 0.0, "seconds": 0.0, "p99": 0.0}
        while total["requests"] < args.soak:
            r = wrk(server.url, lua, connections=64, duration=10)
            total["requests"] += r["requests"]
            total["errors"] += r["errors"]
            total["seconds"] += 10
            total["p99"] = max(total["p99"], r["p99"])
        after = server.rss_kib()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics").read().decode()
    finally:
        server.stop()
    bad = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("gf_calls_total{") and 'status="200"' not in line
    )
    return {
        **total,
        "rps": total["requests"] / total["seconds"],
        "rss_before": base,
        "rss_after": after,
        "server_errors": bad,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--soak", type=int, default=100_000, help="0 skips the soak")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)} (ratios need both sides)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: bash scripts/system-deps.sh --bench", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        print(f"unknown servers {unknown}; choose from {','.join(SERVERS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gf-bench-") as d:
        tmp = Path(d)
        url = build_registry(tmp)
        lua = tmp / "post.lua"
        lua.write_text(LUA % BODY)
        runs: dict[str, list[Run]] = {n: [] for n in names}
        for i in range(args.repeats):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                runs[name].append(measure(name, tmp, url, lua, args))
        med = {n: Median.of(rs) for n, rs in runs.items()}
        print()
        for n, m in med.items():
            errors = sum(r.errors for r in runs[n])
            print(
                f"median {n:14s} {m.rps:9.0f} req/s  p50 {m.p50:6.2f} ms  p99 {m.p99:6.2f} ms"
                f"  errors {errors}  CPU/req server {m.server_cpu:4.0f} us wrk {m.wrk_cpu:3.0f} us"
                f"  (server {m.server_cores:.2f} + wrk {m.wrk_cores:.2f} + others "
                f"{m.other_cores:.2f} cores)"
            )
        print()
        for label, a, b, field, op, target in CHECKS:
            if a not in med or b not in med:
                continue
            value = getattr(med[a], field) / getattr(med[b], field)
            met = value >= target if op == ">=" else value <= target
            print(
                f"ratio {label}: {value:.2f}x (target {op} {target}x) {'MET' if met else 'NOT MET'}"
            )
        if "ours-inline" in med and "ours-inline-p2" in med:
            one, two = med["ours-inline"], med["ours-inline-p2"]
            cores = os.cpu_count() or 1
            ceiling = cores / ((one.server_cpu + two.wrk_cpu) / 1e6) / one.rps
            free = max(0.0, cores - two.other_cores)
            print(
                f"ceiling for ours-inline-p2 / ours-inline on {cores} cores shared with wrk: "
                f"{ceiling:.2f}x = {cores} / (one process's server CPU {one.server_cpu:.0f} us + "
                f"wrk {two.wrk_cpu:.0f} us per request) / {one.rps:.0f} req/s; with the "
                f"{two.other_cores:.2f} cores other processes took during the two-process runs: "
                f"{ceiling * free / cores:.2f}x"
            )
        if args.soak:
            s = soak(tmp, url, lua, args)
            growth = (s["rss_after"] - s["rss_before"]) / s["rss_before"]
            print()
            print(
                f"soak {int(s['requests'])} requests at concurrency 64: {s['rps']:.0f} req/s, "
                f"wrk errors {int(s['errors'])}, server non-200 calls {int(s['server_errors'])}, "
                f"RSS {s['rss_before'] / 1024:.1f} -> {s['rss_after'] / 1024:.1f} MiB "
                f"({growth * 100:+.1f}%, target < 20%) "
                f"(worst 10 s p99 {s['p99']:.1f} ms) "
                f"{'MET' if s['errors'] == 0 and s['server_errors'] == 0 and growth < 0.2 and s['requests'] >= args.soak else 'NOT MET'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
