"""HTTP benchmark: our tornado server vs the seed's handler vs FastAPI, and isolated vs inline.

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
- ours-isolated: the same as ours-inline with ``--mode isolated`` (2 workers).

Then the soak: at least ``--soak`` requests (100,000) at concurrency 64 against ours-inline
(consecutive 10 s wrk runs),
counting errors (wrk's non-2xx and socket errors, and the server's own metrics) and the
server's RSS after a warm-up vs after the soak.

    .venv/bin/python bench/bench_http.py --duration 10 --repeats 3

Needs ``wrk`` (``apt-get install -y wrk``). Prints one line per run and one per ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
            "mode": name.split("-", 1)[1],
            "workers": 2,
            "cache_dir": str(tmp / "cache"),
            "access_log": str(tmp / f"access-{port}.log"),
        }
        return Server(name, [PY, "-c", OURS, json.dumps(args)], port, tmp)
    script = {"seed": "bench/seed_server.py", "fastapi": "bench/fastapi_server.py"}[name]
    return Server(name, [PY, script, "--port", str(port), "--packages", "packages"], port, tmp)


def wrk(url: str, lua: Path, *, connections: int, duration: float) -> dict[str, float]:
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
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    return parse_wrk(out)


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
        r = wrk(server.url, lua, connections=args.concurrency, duration=args.duration)
    finally:
        server.stop()
    run = Run(name, r["rps"], r["p50"], r["p99"], int(r["requests"]), int(r["errors"]))
    print(
        f"run {name:14s} {run.rps:9.0f} req/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
        f"  ({run.requests} requests, {run.errors} errors)",
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
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    names = ["ours-inline", "seed", "fastapi", "ours-isolated"]
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
        med = {
            n: (
                statistics.median(r.rps for r in rs),
                statistics.median(r.p99_ms for r in rs),
                statistics.median(r.p50_ms for r in rs),
            )
            for n, rs in runs.items()
        }
        print()
        for n, (rps, p99, p50) in med.items():
            errors = sum(r.errors for r in runs[n])
            print(
                f"median {n:14s} {rps:9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}"
            )
        checks = [
            ("ours-inline / seed req/s", med["ours-inline"][0] / med["seed"][0], ">=", 1.0),
            ("ours-inline / fastapi req/s", med["ours-inline"][0] / med["fastapi"][0], ">=", 1.2),
            ("ours-inline / seed p99", med["ours-inline"][1] / med["seed"][1], "<=", 1.2),
            (
                "ours-isolated / ours-inline req/s",
                med["ours-isolated"][0] / med["ours-inline"][0],
                ">=",
                0.5,
            ),
        ]
        print()
        for label, value, op, target in checks:
            met = value >= target if op == ">=" else value <= target
            print(
                f"ratio {label}: {value:.2f}x (target {op} {target}x) {'MET' if met else 'NOT MET'}"
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
