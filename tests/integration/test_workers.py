"""``gf worker`` processes on a real redis-server, and GFClient finding them and failing over.

Every worker is a real ``python -m globalfunc.cli worker`` subprocess with its own packages
root (a git repo holding ``tests/data/workers``), serving inline so that a call's pid is
the worker's pid. Ports come from a random range (parallel runs do not collide) whose
first port the tests keep busy while the workers start.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from globalfunc import __version__
from globalfunc.cli import main
from globalfunc.client import GFClient
from globalfunc.errors import BadArguments, ExecutionError, StorageUnavailable
from globalfunc.workers import WorkerDirectory, WorkerInfo, machine_memory_mb, memory_gb
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WORKER_FUNCS = REPO / "tests" / "data" / "workers"
READY = re.compile(r"^GlobalFunc worker (\S+) at (\S+) ")


def make_root(path: Path) -> Path:
    """A packages repository (git, one commit) holding ``tests/data/workers``."""
    shutil.copytree(WORKER_FUNCS, path, ignore=shutil.ignore_patterns("__pycache__"))
    repo = git.Repo.init(path, initial_branch="master")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "email", "tests@globalfunc.local")
        cfg.set_value("user", "name", "GlobalFunc Tests")
    (path / ".gitignore").write_text(".globalfunc/\n__pycache__/\n")
    repo.git.add(A=True)
    repo.index.commit("worker test functions")
    repo.close()
    return path


class WorkerProcess:
    """``gf worker`` in a subprocess; :meth:`wait` reads its ``GlobalFunc worker NAME at URL`` line."""

    def __init__(self, root: Path, env: dict[str, str], *args: str) -> None:
        self.log_path = root.parent / f"{root.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "globalfunc.cli", "--root", str(root), "worker", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=str(REPO),
        )
        self.name = self.url = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, within: float = 60.0) -> WorkerProcess:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within
        buffer = b""
        while True:
            for line in buffer.decode(errors="replace").splitlines(keepends=True):
                match = READY.match(line)
                if match and line.endswith("\n"):
                    self.name, self.url = match.groups()
                    return self
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"worker did not start; output {buffer!r}; log:\n{self.log()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                buffer += os.read(self.proc.stdout.fileno(), 4096)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _free_range(size: int) -> tuple[int, int]:
    """``size`` consecutive ports nothing listens on, below the usual ephemeral range."""
    for _ in range(100):
        first = random.randrange(20000, 32000 - size)
        try:
            for sock in [_listen(p) for p in range(first, first + size)]:
                sock.close()
        except OSError:
            continue
        return first, first + size - 1
    raise RuntimeError("no free port range found in 20000-32000")


@dataclass
class Cluster:
    tmp: Path
    redis_url: str
    env: dict[str, str]
    ports: tuple[int, int]
    a: WorkerProcess
    b: WorkerProcess
    directory: WorkerDirectory

    def start(self, label: str, *args: str, **env: str) -> WorkerProcess:
        root = make_root(self.tmp / label)
        return WorkerProcess(root, {**self.env, **env}, "--host-label", label, *args).wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("workers")
    redis_server = RedisServer(tmp / "redis")
    redis_server.start()
    first, last = ports = _free_range(10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GF_")}
    env.update(
        PYTHONPATH=str(REPO),
        TZ="UTC",
        GF_WORKER_REDIS_URL=redis_server.url,
        GF_WORKER_PORTS=f"{first}-{last}",
        GF_WORKER_HEARTBEAT="0.2",
        GF_MODE="inline",
        GF_CACHE_DIR=str(tmp / "function-cache"),
    )
    busy = _listen(first)  # the workers must skip it
    workers: list[WorkerProcess] = []
    try:
        a = WorkerProcess(
            make_root(tmp / "a"), env, "--host-label", "m7", "--version-label", "v101",
            "--memory-gb", "30",
        )  # fmt: skip
        workers.append(a)
        b = WorkerProcess(make_root(tmp / "b"), env)
        workers.append(b)
        a.wait()
        b.wait()
        busy.close()
        with WorkerDirectory(redis_server.url) as directory:
            yield Cluster(tmp, redis_server.url, env, ports, a, b, directory)
    finally:
        busy.close()
        for w in workers:
            w.stop()
        redis_server.stop()


def test_workers_register_under_their_names(cluster: Cluster) -> None:
    first, last = cluster.ports
    a, b = cluster.a, cluster.b
    port_a = int(a.url.rsplit(":", 1)[1].rstrip("/"))
    assert a.name == f"m7_v101_30G_0G_{port_a}" and a.url == f"http://127.0.0.1:{port_a}/"
    host = socket.gethostname().split(".")[0]
    default = re.sub(r"[^A-Za-z0-9-]+", "-", host).strip("-")
    port_b = int(b.url.rsplit(":", 1)[1].rstrip("/"))
    assert b.name == f"{default}_v{__version__}_{memory_gb(machine_memory_mb())}G_0G_{port_b}"
    assert first < port_a <= last and first < port_b <= last and port_a != port_b
    time.sleep(1.0)  # > the 0.6 s TTL: only the heartbeats keep them listed
    live = {w.name: w for w in cluster.directory.live()}
    assert set(live) == {a.name, b.name}
    assert live[a.name].pid == a.pid and live[b.name].pid == b.pid
    assert live[a.name].port == port_a and live[a.name].branch == "master"
    assert live[a.name].last_seen > live[a.name].started_at
    with GFClient(a.url) as direct:
        assert direct.health()["status"] == "ok"


def test_gf_workers_lists_them(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GF_WORKER_REDIS_URL", cluster.redis_url)
    assert main(["workers"]) == 0
    out = capsys.readouterr().out
    for w in (cluster.a, cluster.b):
        assert re.search(
            rf"^{re.escape(w.name)}  {re.escape(w.url)}  heartbeat \d+\.\ds ago  \d+ in flight$",
            out,
            re.M,
        )
    assert main(["workers", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(w["name"] for w in listed) == sorted([cluster.a.name, cluster.b.name])
    assert all(0 <= w["age"] < 30 for w in listed)


def test_calls_are_spread_round_robin(cluster: Cluster) -> None:
    with GFClient.from_workers(cluster.redis_url) as client:
        pids = [client.call("Side.whoami") for _ in range(6)]
    assert sorted(set(pids)) == sorted({cluster.a.pid, cluster.b.pid})
    assert all(x != y for x, y in itertools.pairwise(pids))


def test_application_errors_are_answers_not_retried(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    with GFClient.from_workers(cluster.redis_url) as client:
        with pytest.raises(ExecutionError, match="failed on purpose"):
            client.call("Side.append_and_raise", path=str(marker))
        with pytest.raises(BadArguments):
            client.call("Side.whoami", nope=1)
    assert marker.read_text() == "ran\n"  # the function ran exactly once
    logs = cluster.a.log() + cluster.b.log()
    assert len(re.findall(r"POST /call/Side\.whoami \S+ 422 ", logs)) == 1
    assert len(re.findall(r"POST /call/Side\.append_and_raise \S+ 500 ", logs)) == 1


def test_a_killed_worker_is_skipped_until_it_expires(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    doomed = cluster.start("doomed", GF_WORKER_HEARTBEAT="5")  # its entry outlives it by 15 s
    try:
        doomed.stop(signal.SIGKILL)
        assert cluster.directory.get(doomed.name) is not None  # still registered
        with (
            caplog.at_level(logging.WARNING, logger="globalfunc.client"),
            GFClient.from_workers(cluster.redis_url, prefer=doomed.name) as client,
        ):
            assert doomed.name in [w.name for w in client.workers()]
            pids = {client.call("Side.whoami") for _ in range(4)}
        assert pids <= {cluster.a.pid, cluster.b.pid} and pids
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and doomed.name in warnings[0]
    finally:
        doomed.stop(signal.SIGKILL)
        cluster.directory.deregister(doomed.name)


def test_sigterm_deregisters_at_once(cluster: Cluster) -> None:
    leaving = cluster.start("leaving", GF_WORKER_HEARTBEAT="5")  # its entry would live 15 s
    assert cluster.directory.get(leaving.name) is not None
    assert leaving.stop(signal.SIGTERM) == 0
    assert cluster.directory.get(leaving.name) is None
    assert f"worker {leaving.name} deregistered" in leaving.log()
    assert {w.name for w in cluster.directory.live()} == {cluster.a.name, cluster.b.name}


def test_a_full_port_range_is_one_clear_line(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = _free_range(2)
    busy = [_listen(first), _listen(last)]
    try:
        code = main(
            [
                "--root", str(make_root(cluster.tmp / "full")), "worker",
                "--redis", cluster.redis_url, "--ports", f"{first}-{last}",
            ]
        )  # fmt: skip
    finally:
        for sock in busy:
            sock.close()
    err = capsys.readouterr().err
    assert code == 1 and f"gf: error: no free port in {first}-{last}" in err
    assert "Traceback" not in err


def test_redis_down_or_missing_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GF_WORKER_REDIS_URL", "GF_CACHE_URL"):
        monkeypatch.delenv(name, raising=False)
    root = str(make_root(tmp_path / "root"))
    assert main(["--root", root, "worker"]) == 1
    assert "set GF_WORKER_REDIS_URL" in capsys.readouterr().err
    assert main(["workers"]) == 1
    assert "set GF_WORKER_REDIS_URL" in capsys.readouterr().err

    down = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("GF_CACHE_URL", down)  # the default of GF_WORKER_REDIS_URL
    for args in (["--root", root, "worker"], ["workers"]):
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("gf: error: Redis at redis://127.0.0.1:")
        assert "is unreachable" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(StorageUnavailable, match="worker directory"):
        GFClient.from_workers(down)


def test_bad_labels_fail_before_anything_starts(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["worker", "--redis", cluster.redis_url, "--host-label", "__"]
    code = main(["--root", str(cluster.tmp / "a"), *args])
    assert code == 1 and "has no letters or digits" in capsys.readouterr().err
    assert {w.name for w in cluster.directory.live()} == {cluster.a.name, cluster.b.name}


def test_worker_info_matches_what_serves(cluster: Cluster) -> None:
    info = cluster.directory.get(cluster.a.name)
    assert isinstance(info, WorkerInfo)
    assert info.root == str((cluster.tmp / "a").resolve()) and info.packages is None
    with GFClient(info.url) as direct:
        assert [f["name"] for f in direct.functions()] == [
            "Side.append_and_raise",
            "Side.whoami",
        ]
