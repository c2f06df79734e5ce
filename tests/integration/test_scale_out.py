"""Scale-out against real processes: three ``gf worker`` processes, a real redis-server.

- 600 calls with ``retries=2`` while one of three workers is SIGKILLed: no call fails,
  every call ran, and at most the one call in flight at the kill ran twice (the function
  appends a line per run); the dead worker leaves the list within its TTL.
- A repeated ``Idempotency-Key`` returns the recorded outcome without running again.
- ``gf workers drain NAME`` finishes the call in flight, refuses new ones with 503,
  deregisters and stops the worker; ``gf workers stop NAME`` stops it at once.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from globalfunc.client import GFClient
from globalfunc.errors import Overloaded
from globalfunc.workers import WorkerDirectory
from tests.integration.serve_support import REPO, ServerProcess, clean_env, make_repo
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

SCALE_FUNCS = REPO / "tests" / "data" / "scale"
HEARTBEAT = 1.0  # an entry lives 3 s after the last beat


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("scale") / "packages", SCALE_FUNCS)


@pytest.fixture
def redis_url(own_redis: RedisServer) -> str:
    return own_redis.url


def start_workers(root: Path, redis_url: str, labels: list[str]) -> list[ServerProcess]:
    env = clean_env(GF_WORKER_REDIS_URL=redis_url, GF_WORKER_HEARTBEAT=str(HEARTBEAT))
    first = free_port()
    ports = f"{first}-{first + 40}"
    out = []
    try:
        for label in labels:  # one at a time: each takes the next free port
            out.append(
                ServerProcess.gf(
                    root, "worker", "--ports", ports, "--host-label", label, env=env
                ).start()
            )
    except BaseException:
        for w in out:
            w.stop()
        raise
    return out


def runs(log: Path) -> collections.Counter[int]:
    return collections.Counter(int(line.split()[0]) for line in log.read_text().splitlines())


def test_600_calls_survive_a_worker_killed_mid_run(
    root: Path, redis_url: str, tmp_path: Path
) -> None:
    workers = start_workers(root, redis_url, ["a", "b", "c"])
    log = tmp_path / "runs.log"
    doomed = workers[0]
    killed_at: list[float] = []

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = log.read_text() if log.exists() else ""
            # a third of the way in, and the last run started on the doomed worker
            if text.count("\n") >= 200 and text.rstrip().endswith(f" {doomed.pid}"):
                doomed.proc.kill()  # type: ignore[union-attr]
                killed_at.append(time.monotonic())
                return
            time.sleep(0.0005)

    try:
        with GFClient.from_workers(redis_url, retries=2, refresh=1.0, backoff=0.05) as client:
            assert len(client.workers()) == 3
            killer = threading.Thread(target=kill_when_busy)
            killer.start()
            results = [
                client.call("Logged.logged", seq=i, path=str(log), seconds=0.005)
                for i in range(600)
            ]
            killer.join()
        assert results == list(range(600))  # no call failed, each answered its own
        assert killed_at, "the worker was never caught mid-run"
        counts = runs(log)
        assert set(counts) == set(range(600))  # every call ran
        twice = [seq for seq, n in counts.items() if n > 1]
        assert len(twice) <= 1 and all(counts[s] == 2 for s in twice), twice
        pids = collections.Counter(int(line.split()[1]) for line in log.read_text().splitlines())
        assert set(pids) == {w.pid for w in workers}  # all three took calls
        # the dead worker leaves the list within its TTL (3 heartbeats) of the kill
        with WorkerDirectory(redis_url) as directory:
            while doomed.name in {w.name for w in directory.live()}:
                assert time.monotonic() - killed_at[0] < 3 * HEARTBEAT + 1.0
                time.sleep(0.05)
            assert {w.name for w in directory.live()} == {workers[1].name, workers[2].name}
    finally:
        for w in workers:
            w.stop()


def test_a_repeated_key_returns_the_recorded_outcome(
    root: Path, redis_url: str, tmp_path: Path
) -> None:
    workers = start_workers(root, redis_url, ["a", "b"])
    log = tmp_path / "runs.log"
    try:
        with GFClient.from_workers(redis_url) as client:
            kwargs = {"seq": 7, "path": str(log)}
            for _ in range(4):  # spread over both workers: one run
                assert client.call_with("Logged.logged", kwargs, idempotency_key="k-7") == 7
            assert runs(log) == {7: 1}
            # an error is an outcome too
            bad = {"x": 3, "bad": 3}
            for _ in range(2):
                with pytest.raises(ValueError, match="chosen to fail"):
                    client.call_with("Logged.double_or_fail", bad, idempotency_key="k-bad")
            assert client.call_with("Logged.logged", {"seq": 8, "path": str(log)}) == 8
            assert runs(log) == {7: 1, 8: 1}  # without a key given, a new one per call
    finally:
        for w in workers:
            w.stop()


def gf(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", "workers", *args, "--redis", redis_url],
        env=clean_env(),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_drain_finishes_the_call_in_flight_then_stops(
    root: Path, redis_url: str, tmp_path: Path
) -> None:
    (worker,) = start_workers(root, redis_url, ["d"])
    log = tmp_path / "runs.log"
    try:
        direct = GFClient(worker.url, timeout=30)
        slow: list[object] = []
        call = threading.Thread(
            target=lambda: slow.append(
                direct.call("Logged.logged", seq=1, path=str(log), seconds=3.0)
            )
        )
        call.start()
        while not log.exists():  # the call is running
            time.sleep(0.01)
        started = time.monotonic()
        argv = ["workers", "drain", worker.name, "--redis", redis_url, "--timeout", "30"]
        drain = subprocess.Popen(
            [sys.executable, "-m", "globalfunc.cli", *argv],
            env=clean_env(),
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # the worker takes the command within 0.5 s
        with WorkerDirectory(redis_url) as directory:
            info = directory.get(worker.name)
            assert info is not None and info.draining and info.inflight == 1
        with pytest.raises(Overloaded, match="draining"):
            GFClient(worker.url, timeout=30).call("Logged.logged", seq=2, path=str(log))
        out, err = drain.communicate(timeout=30)
        call.join(timeout=30)
        assert drain.returncode == 0, err
        assert f"{worker.name} drained and stopped" in out
        assert slow == [1]  # the call in flight finished with its result
        assert time.monotonic() - started >= 1.5  # drain waited for it
        assert runs(log) == {1: 1}  # the refused call never ran
        assert worker.proc is not None and worker.proc.wait(timeout=10) == 0
        with WorkerDirectory(redis_url) as directory:
            assert directory.live() == []
    finally:
        worker.stop()


def test_stop_and_unknown_names(root: Path, redis_url: str) -> None:
    (worker,) = start_workers(root, redis_url, ["s"])
    try:
        listed = gf(redis_url)
        assert worker.name in listed.stdout and "0 in flight" in listed.stdout
        missing = gf(redis_url, "stop", "nope_v1_1G_0G_26000")
        assert missing.returncode == 1 and "no live worker 'nope_v1_1G_0G_26000'" in missing.stderr
        started = time.monotonic()
        stopped = gf(redis_url, "stop", worker.name)
        assert stopped.returncode == 0, stopped.stderr
        assert time.monotonic() - started < 10
        assert worker.proc is not None and worker.proc.wait(timeout=10) == 0
    finally:
        worker.stop()
