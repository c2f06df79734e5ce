"""Stopping, draining, naming and routing to workers safely: real redis-server, real
``gf worker`` processes (inline mode), each test a finding of the issue-13 attack.

- a stop command outlives nothing: the next worker of that name is not stopped by it;
- ``gf workers stop`` works while a drain waits;
- SIGTERM lets the call in flight finish (within GF_STOP_GRACE), then the worker exits 0;
- a second worker of a live worker's name refuses to start, naming it;
- ``--advertise`` is checked; a loopback one for a 0.0.0.0 bind is refused;
- a forged entry (``inflight: -1000``) is skipped by readers;
- calls go only to workers whose allow-list holds the package;
- ``gf workers drain NAME --timeout -5`` sends nothing.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from globalfunc.client import GFClient
from globalfunc.errors import ServerUnavailable
from globalfunc.workers import WorkerDirectory, WorkerInfo
from tests.integration.serve_support import REPO, ServerProcess, clean_env, make_repo
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

SCALE_FUNCS = REPO / "tests" / "data" / "scale"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("safety") / "packages", SCALE_FUNCS)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory the isolated mode's call processes (another user) can write to."""
    folder = Path(tempfile.mkdtemp(prefix="gf-safety-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_url(own_redis: RedisServer) -> str:
    return own_redis.url


def worker(
    root: Path, redis_url: str, label: str, ports: str, *args: str, **env: str
) -> ServerProcess:
    full = {"GF_WORKER_REDIS_URL": redis_url, "GF_WORKER_HEARTBEAT": "1", **env}
    return ServerProcess.gf(
        root, "worker", "--ports", ports, "--host-label", label, *args, env=full
    )


def gf(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", "workers", *args, "--redis", redis_url],
        env=clean_env(),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )


def slow_call(url: str, log: Path, seconds: float) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def run() -> None:
        try:
            result.append(
                GFClient(url, timeout=60).call(
                    "Logged.logged", seq=1, path=str(log), seconds=seconds
                )
            )
        except Exception as exc:  # the test looks at it
            result.append(exc)

    log.touch()
    log.chmod(0o666)
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not log.stat().st_size:  # the call is running
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return thread, result


def test_a_stale_stop_does_not_stop_the_next_worker_of_that_name(
    root: Path, redis_url: str
) -> None:
    port = free_port()
    first = worker(root, redis_url, "stale", f"{port}-{port}").start()
    second: ServerProcess | None = None
    try:
        first.stop(signal.SIGSTOP, wait=0.1)  # frozen: it never takes the command
        sent = gf(redis_url, "stop", first.name, "--timeout", "1")
        assert sent.returncode == 1 and "still registered" in sent.stderr
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait(timeout=10)
        client = redis.Redis.from_url(redis_url)
        assert client.get(f"gf:control:{first.name}") is not None  # left for the dead one
        second = worker(root, redis_url, "stale", f"{port}-{port}").start()
        assert second.name == first.name
        time.sleep(2.5)  # the heartbeat thread reads commands every 0.5 s
        assert second.proc is not None and second.proc.poll() is None, second.log()
        assert client.get(f"gf:control:{first.name}") is None  # deleted unread
        assert "addressed to another instance" in second.log()
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()


def test_stop_works_while_a_drain_waits(root: Path, redis_url: str, shared: Path) -> None:
    port = free_port()
    w = worker(root, redis_url, "dr", f"{port}-{port + 5}", GF_MODE="isolated").start()
    try:
        thread, result = slow_call(w.url, shared / "runs.log", 20.0)
        drained = gf(redis_url, "drain", w.name, "--timeout", "1.5")
        assert drained.returncode == 1 and "calls still in flight" in drained.stderr
        started = time.monotonic()
        stopped = gf(redis_url, "stop", w.name, "--timeout", "10")
        assert stopped.returncode == 0, stopped.stderr
        assert time.monotonic() - started < 8  # not the 20 s call
        assert w.proc is not None and w.proc.wait(timeout=10) == 0
        thread.join(timeout=30)
        assert result and isinstance(result[0], Exception)  # interrupted, not finished
    finally:
        w.stop(signal.SIGKILL)


def test_sigterm_lets_the_call_in_flight_finish(root: Path, redis_url: str, shared: Path) -> None:
    port = free_port()
    w = worker(
        root, redis_url, "term", f"{port}-{port + 5}", GF_STOP_GRACE="6", GF_MODE="isolated"
    ).start()
    try:
        thread, result = slow_call(w.url, shared / "runs.log", 2.0)
        started = time.monotonic()
        assert w.proc is not None
        w.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with WorkerDirectory(redis_url) as directory:
            info = directory.get(w.name)
            assert info is not None and info.draining  # still owns its call, takes no new
        assert w.proc.wait(timeout=15) == 0
        thread.join(timeout=10)
        assert result == [1]  # finished with its result, not 503
        assert 1.0 < time.monotonic() - started < 6
        with WorkerDirectory(redis_url) as directory:
            assert directory.live() == []
    finally:
        w.stop(signal.SIGKILL)


def test_sigterm_stops_after_the_grace_period(root: Path, redis_url: str, shared: Path) -> None:
    port = free_port()
    w = worker(
        root, redis_url, "grace", f"{port}-{port + 5}", GF_STOP_GRACE="1", GF_MODE="isolated"
    ).start()
    try:
        thread, _ = slow_call(w.url, shared / "runs.log", 30.0)
        started = time.monotonic()
        assert w.proc is not None
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 7  # 1 s grace + the server's own stop (< 5 s)
        thread.join(timeout=30)
    finally:
        w.stop(signal.SIGKILL)


def test_a_second_worker_of_a_live_name_refuses_to_start(root: Path, redis_url: str) -> None:
    port = free_port()
    first = worker(root, redis_url, "dup", f"{port}-{port}").start()
    try:
        second = worker(root, redis_url, "dup", f"{port}-{port}", "--host", "127.0.0.2").run()
        err = second.stderr.decode()
        assert second.returncode != 0
        assert f"taken by a worker that answers at {first.url} (instance " in err, err
        assert f"pid {first.pid} on its machine" in err, err
        # what to do when that "live" worker is in fact this one's dead predecessor
        assert "expires within 3 heartbeats (3s): start this one again after that" in err, err
        with WorkerDirectory(redis_url) as directory:
            info = directory.get(first.name)
            assert info is not None and info.pid == first.pid and info.url == first.url
    finally:
        first.stop()


@pytest.mark.parametrize(
    ("advertise", "host", "says"),
    [
        ("evil host", "127.0.0.1", "is not a host name"),
        ("[::1", "127.0.0.1", "is not [IPv6]"),
        ("", "127.0.0.1", "is empty"),
        ("http://x.y/path", "127.0.0.1", "has a path"),
        ("h:99999", "127.0.0.1", "not one in 1-65535"),
        ("127.0.0.1", "0.0.0.0", "is a loopback address"),
    ],
)
def test_advertise_is_checked(
    root: Path, redis_url: str, advertise: str, host: str, says: str
) -> None:
    port = free_port()
    run = worker(
        root,
        redis_url,
        "adv",
        f"{port}-{port}",
        "--host",
        host,
        "--advertise",
        advertise,
        GF_INSECURE="1",
    ).run()
    err = run.stderr.decode()
    assert run.returncode != 0 and says in err and repr(advertise) in err, err
    with WorkerDirectory(redis_url) as directory:
        assert directory.live() == []


def test_a_forged_entry_is_skipped_by_readers(root: Path, redis_url: str) -> None:
    port = free_port()
    real = worker(root, redis_url, "real", f"{port}-{port + 5}").start()
    try:
        forged = {
            **orjson.loads(
                WorkerInfo.new(
                    host="evil",
                    version="v1",
                    memory_gb=1,
                    gpu_gb=0,
                    port=26000,
                    url="http://127.0.0.1:9/",
                ).to_json()
            ),
            "inflight": -1000,
        }
        client = redis.Redis.from_url(redis_url)
        client.set(f"gf:worker:{forged['name']}", orjson.dumps(forged), px=60_000)
        client.sadd("gf:workers", forged["name"])
        with GFClient.from_workers(redis_url) as c:
            assert [w.name for w in c.workers()] == [real.name]
            assert c.call("Logged.double_or_fail", x=2) == 4
    finally:
        real.stop()


def test_calls_go_only_to_workers_allowing_the_package(root: Path, redis_url: str) -> None:
    port = free_port()
    ports = f"{port}-{port + 10}"
    other = worker(root, redis_url, "other", ports, GF_ALLOW_PACKAGES="Elsewhere").start()
    try:
        with (
            GFClient.from_workers(redis_url) as c,
            pytest.raises(ServerUnavailable, match="no live worker serves package 'Logged'"),
        ):
            c.call("Logged.double_or_fail", x=1)
        allowing = worker(root, redis_url, "allow", ports).start()
        try:
            with GFClient.from_workers(redis_url) as c:
                assert [c.call("Logged.double_or_fail", x=i) for i in range(20)] == [
                    2 * i for i in range(20)
                ]
        finally:
            allowing.stop()
    finally:
        other.stop()


def test_bad_options_send_nothing(redis_url: str) -> None:
    info = WorkerInfo.new(
        host="opt", version="v1", memory_gb=1, gpu_gb=0, port=26000, url="http://127.0.0.1:9/"
    )
    with WorkerDirectory(redis_url) as directory:
        directory.register(info, 60)
    for args, says in [
        (("drain", info.name, "--timeout", "-5"), "--timeout -5 is not a number of seconds"),
        (("stop", info.name, "--grace", "-1"), "--grace -1 is not a number of seconds"),
        (("drain", info.name, "--grace", "3"), "is for 'gf workers stop'"),
    ]:
        run = gf(redis_url, *args)
        assert run.returncode != 0 and says in run.stderr, run.stderr
        assert redis.Redis.from_url(redis_url).get(f"gf:control:{info.name}") is None
