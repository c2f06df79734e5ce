"""Idempotency keys across worker restarts and Redis faults: real redis-server, real
``gf worker`` processes; each test a finding of the second issue-13 attack.

- a worker restarted with the same name, port AND pid (pid 1 in a pid namespace, as in a
  container) is another owner: its old claim is taken over at once, not waited on;
- an outcome Redis refused (``CLIENT PAUSE WRITE``) is written later, and until then
  duplicates wait for it instead of running the call again;
- a claim that expired while its call ran (Redis SIGSTOPped past the TTL) is set again
  by its renewal, so a duplicate waits instead of running it;
- a take-over keeps the TTL its key's first claim chose (a spoofed
  ``X-GF-Key-Origin: client`` does not shorten it);
- ``gf worker --host ::1`` / ``'[::1]'`` serve and register ``http://[::1]:PORT/``.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest
import redis

from globalfunc.client import GFClient
from globalfunc.idempotency import AsyncOutcomeRecord
from globalfunc.idempotency.entry import CallKey, Outcome
from globalfunc.workers import WorkerDirectory
from tests.integration.serve_support import REPO, ServerProcess, make_repo
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

SCALE_FUNCS = REPO / "tests" / "data" / "scale"
FP = b"f" * 32


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("restart") / "packages", SCALE_FUNCS)


@pytest.fixture
def server(own_redis: RedisServer) -> RedisServer:
    return own_redis


@pytest.fixture
def log(run_log: Path) -> Path:
    return run_log


def worker(
    root: Path,
    url: str,
    label: str,
    port: int,
    *args: str,
    prefix: tuple[str, ...] = (),
    **env: str,
) -> ServerProcess:
    full = {"GF_WORKER_REDIS_URL": url, "GF_WORKER_HEARTBEAT": "1", **env}
    made = ServerProcess.gf(
        root, "worker", "--ports", f"{port}-{port}", "--host-label", label, *args, env=full
    )
    made.argv = [*prefix, *made.argv]
    return made


def runs(log: Path) -> int:
    return len(log.read_text().splitlines())


def call_in_thread(url: str, key: str, log: Path, seconds: float) -> tuple[threading.Thread, list]:
    out: list[object] = []

    def go() -> None:
        try:
            out.append(
                GFClient(url, timeout=60).call_with(
                    "Logged.logged",
                    {"seq": 7, "path": str(log), "seconds": seconds},
                    idempotency_key=key,
                )
            )
        except Exception as exc:  # the test looks at it
            out.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    return thread, out


def wait_for_run(log: Path, count: int = 1, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while runs(log) < count:
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.01)


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


NAMESPACE = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")


@pytest.mark.skipif(not _unshare_works(), reason="unshare --pid needs root (CAP_SYS_ADMIN)")
def test_a_restart_with_the_same_pid_is_another_owner(
    root: Path, server: RedisServer, log: Path
) -> None:
    port, other_port = free_port(), free_port()
    other = worker(root, server.url, "a", other_port).start()
    first = worker(root, server.url, "p", port, prefix=NAMESPACE).start()
    again: ServerProcess | None = None
    client = redis.Redis.from_url(server.url)
    key = f"samepid-{time.monotonic_ns()}"
    try:
        with WorkerDirectory(server.url) as directory:
            before = directory.get(first.name)
        assert before is not None and before.pid == 1  # pid 1 of its namespace
        thread, _ = call_in_thread(first.url, key, log, 4)
        wait_for_run(log)
        first.stop(signal.SIGKILL)  # --kill-child: the worker (pid 1) dies with unshare
        thread.join(timeout=30)
        again = worker(root, server.url, "p", port, prefix=NAMESPACE).start()
        with WorkerDirectory(server.url) as directory:
            after = directory.get(again.name)
        assert after is not None and after.pid == 1 and after.instance != before.instance
        claim = Outcome.parse(client.get(f"gf:idem:anonymous:{key}"))
        assert claim.running and claim.worker == f"{first.name} {before.instance}"
        # the restarted worker's own resend: its claim token differs from the dead one's
        started = time.monotonic()
        got = GFClient(again.url, timeout=30).call_with(
            "Logged.logged", {"seq": 7, "path": str(log), "seconds": 4}, idempotency_key=key
        )
        assert got == 7 and runs(log) == 2
        assert time.monotonic() - started < 4 + 4  # taken over at once, not waited on
        # a resend to the other worker now gets the recorded outcome
        assert (
            GFClient(other.url, timeout=30).call_with(
                "Logged.logged", {"seq": 7, "path": str(log), "seconds": 4}, idempotency_key=key
            )
            == 7
        )
        assert runs(log) == 2
    finally:
        first.stop(signal.SIGKILL)
        if again is not None:
            again.stop()
        other.stop()


def test_an_outcome_redis_refused_is_written_later(
    root: Path, server: RedisServer, log: Path
) -> None:
    one = worker(root, server.url, "one", free_port()).start()
    two = worker(root, server.url, "two", free_port()).start()
    client = redis.Redis.from_url(server.url)
    key = f"recfail-{time.monotonic_ns()}"
    name = f"gf:idem:anonymous:{key}"
    try:
        thread, out = call_in_thread(one.url, key, log, 2)
        wait_for_run(log)
        time.sleep(1.5)
        client.execute_command("CLIENT", "PAUSE", "3000", "WRITE")  # as the call ends
        paused = time.monotonic()
        thread.join(timeout=30)
        assert out == [7]
        # the write timed out (2 s) during the pause; right after it, before the retry
        # lands, a duplicate elsewhere waits for the outcome (it must not run, nor hang)
        time.sleep(max(0.0, paused + 3.05 - time.monotonic()))
        started = time.monotonic()
        dup = GFClient(two.url, timeout=30).call_with(
            "Logged.logged", {"seq": 7, "path": str(log), "seconds": 2}, idempotency_key=key
        )
        assert dup == 7 and runs(log) == 1, one.log()
        assert time.monotonic() - started < 15
        assert client.get(name)[:1] == b"D"  # the outcome landed
        assert "its outcome was not recorded" in one.log()
        assert (
            GFClient(one.url, timeout=30).call_with(
                "Logged.logged", {"seq": 7, "path": str(log), "seconds": 2}, idempotency_key=key
            )
            == 7
        )
        assert runs(log) == 1
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
        one.stop()
        two.stop()


def test_a_claim_that_expired_while_its_call_ran_is_set_again(
    root: Path, server: RedisServer, log: Path
) -> None:
    # heartbeat 2 s: the directory entries (6 s) outlive the 2.5 s Redis stop
    # isolated: the call runs in a child, so the loop renews the claim meanwhile
    env = {"GF_IDEMPOTENCY_TTL": "1.5", "GF_WORKER_HEARTBEAT": "2", "GF_MODE": "isolated"}
    one = worker(root, server.url, "one", free_port(), **env).start()
    two = worker(root, server.url, "two", free_port(), **env).start()
    key = f"renew-{time.monotonic_ns()}"
    assert server.proc is not None
    try:
        thread, out = call_in_thread(one.url, key, log, 6)
        wait_for_run(log)
        server.proc.send_signal(signal.SIGSTOP)
        time.sleep(2.5)  # past the claim's 1.5 s
        server.proc.send_signal(signal.SIGCONT)
        time.sleep(0.6)  # a renewal retry (every 0.2 s after a failure) sets it again
        dup = GFClient(two.url, timeout=60).call_with(
            "Logged.logged", {"seq": 7, "path": str(log), "seconds": 6}, idempotency_key=key
        )
        thread.join(timeout=60)
        assert dup == 7 and out == [7]
        assert runs(log) == 1, one.log() + two.log()
        # renewals failed while Redis was stopped; one of them (a late one Redis ran on
        # waking, or a retry: then logged "was set again") put the expired claim back
        assert "its claim was not renewed" in one.log()
    finally:
        server.proc.send_signal(signal.SIGCONT)
        one.stop()
        two.stop()


def test_a_take_over_keeps_the_first_claims_ttl(server: RedisServer) -> None:
    async def scenario() -> tuple[int, int]:
        record = AsyncOutcomeRecord(server.url, ttl=600)
        plain = CallKey(f"spoof-{time.monotonic_ns()}", fp=FP)
        assert await record.claim(plain, "dead 0 1") is None
        seen = await record.look(plain)
        assert seen is not None and seen.running and not seen.short
        # the taking request says its key is the client's own (a spoofed header)
        spoofed = CallKey(str(plain), fp=FP, client_made=True)
        assert await record.take_over(spoofed, seen, "live 0 1")
        client = redis.Redis.from_url(server.url)
        claimed = client.pttl(record.key(plain))
        await record.record(spoofed, 200, b"7")
        recorded = client.pttl(record.key(plain))
        await record.aclose()
        return claimed, recorded

    claimed, recorded = asyncio.run(scenario())
    assert claimed > 60_000 and recorded > 60_000  # 600 s, as the first claim chose


def test_a_client_keys_short_ttl_survives_a_take_over(server: RedisServer) -> None:
    async def scenario() -> int:
        record = AsyncOutcomeRecord(server.url, ttl=600)
        mine = CallKey(f"short-{time.monotonic_ns()}", fp=FP, client_made=True)
        assert await record.claim(mine, "dead 0 1") is None
        seen = await record.look(mine)
        assert seen is not None and seen.short
        plain = CallKey(str(mine), fp=FP)  # the header left out
        assert await record.take_over(plain, seen, "live 0 1")
        await record.record(plain, 200, b"7")
        left = redis.Redis.from_url(server.url).pttl(record.key(mine))
        await record.aclose()
        return int(left)

    assert 0 < asyncio.run(scenario()) <= 60_000


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_a_worker_serves_on_ipv6_loopback(root: Path, server: RedisServer, host: str) -> None:
    port = free_port()
    w = worker(root, server.url, "six", port, "--host", host).start()
    try:
        assert w.url == f"http://[::1]:{port}/"
        with WorkerDirectory(server.url) as directory:
            info = directory.get(w.name)
        assert info is not None and info.url == w.url
        reply = GFClient(w.url, timeout=30).call_with(
            "Logged.logged", {"seq": 3, "path": "/dev/null"}, idempotency_key="six-1"
        )
        assert reply == 3
        assert orjson.loads(redis.Redis.from_url(server.url).get(f"gf:worker:{w.name}"))
    finally:
        w.stop()
