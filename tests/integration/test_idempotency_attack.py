"""Idempotency keys that keep their promise, against real ``gf worker`` processes and a real
redis-server (the findings of the issue-13 attack, each reproduced here):

- twin requests with one key on one worker (and on two) run once;
- a call that outlives ``GF_IDEMPOTENCY_TTL`` keeps its claim (renewed), a duplicate waits;
- a call running when its worker stops answers 502 ``Interrupted`` (not 503), its claim stays;
- a key reused for other arguments or another function: 422 ``IdempotencyKeyReused``;
- keys are scoped by the caller's token: another token's same key runs its own call;
- a result over the size kept: a resend gets 410 ``ResultNotKept``, never a second run;
- a Redis at maxmemory: 503 ``StorageUnavailable`` naming maxmemory;
- the client refuses a bad key before sending; its final error carries each 503's message;
- waiting duplicates back off (Redis commands counted);
- a duplicate whose client left stops waiting: the running worker's death does not make it
  run the call for nobody.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from globalfunc.client import GFClient
from globalfunc.errors import (
    BadIdempotencyKey,
    IdempotencyKeyReused,
    Interrupted,
    ResultNotKept,
    ServerUnavailable,
    StorageUnavailable,
)
from globalfunc.idempotency import AsyncOutcomeRecord
from tests.integration.serve_support import REPO, ServerProcess, clean_env, make_repo
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

FUNCS = REPO / "tests" / "data" / "idem"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("idem") / "packages", FUNCS)


@pytest.fixture
def server(own_redis: RedisServer) -> RedisServer:
    return own_redis


def workers(root: Path, url: str, labels: list[str], **env: str) -> list[ServerProcess]:
    environ = clean_env(GF_WORKER_REDIS_URL=url, GF_WORKER_HEARTBEAT="1", GF_MODE="isolated")
    environ.update(env)
    first = free_port()
    out: list[ServerProcess] = []
    try:
        for label in labels:
            args = ("worker", "--ports", f"{first}-{first + 40}", "--host-label", label)
            out.append(ServerProcess.gf(root, *args, env=environ).start())
    except BaseException:
        for w in out:
            w.stop()
        raise
    return out


@pytest.fixture
def log(run_log: Path) -> Path:
    return run_log


def runs(log: Path) -> collections.Counter[str]:
    text = log.read_text() if log.exists() else ""
    return collections.Counter(line.split()[0] for line in text.splitlines())


def test_twin_requests_with_one_key_run_once(root: Path, server: RedisServer, log: Path) -> None:
    ws = workers(root, server.url, ["a", "b"])
    try:
        clients = [GFClient(w.url, timeout=30) for w in ws]
        for i in range(20):
            key = uuid.uuid4().hex
            answers: list[object] = []
            kwargs = {"seq": i, "path": str(log), "seconds": 0.05}

            def call(c: GFClient, kw: dict[str, object], k: str, out: list[object]) -> None:
                out.append(c.call_with("Idem.logged", kw, idempotency_key=k))

            # three at once on each worker: same worker twins and cross-worker twins
            threads = [
                threading.Thread(target=call, args=(c, kwargs, key, answers))
                for c in clients
                for _ in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert answers == [i] * 6
        counts = runs(log)
        assert len(counts) == 20 and all(n == 1 for n in counts.values()), counts
    finally:
        for w in ws:
            w.stop()


def test_a_call_longer_than_the_ttl_keeps_its_claim(
    root: Path, server: RedisServer, log: Path
) -> None:
    ws = workers(root, server.url, ["a", "b"], GF_IDEMPOTENCY_TTL="1.5")
    key = "long-" + uuid.uuid4().hex
    kwargs = {"seq": 1, "path": str(log), "seconds": 4}
    try:
        first: list[object] = []
        t = threading.Thread(
            target=lambda: first.append(
                GFClient(ws[0].url, timeout=30).call_with(
                    "Idem.logged", kwargs, idempotency_key=key
                )
            )
        )
        t.start()
        time.sleep(2.5)  # the claim's own TTL (1.5 s) is over; renewed, it is still there
        second = GFClient(ws[1].url, timeout=30).call_with(
            "Idem.logged", kwargs, idempotency_key=key
        )
        t.join()
        assert first == [1] and second == 1
        assert runs(log) == {"1": 1}
    finally:
        for w in ws:
            w.stop()


def test_a_call_running_when_its_worker_stops_is_interrupted_not_refused(
    root: Path, server: RedisServer, log: Path
) -> None:
    ws = workers(root, server.url, ["a", "b"], GF_STOP_GRACE="0")
    key = "stop-" + uuid.uuid4().hex
    kwargs = {"seq": 7, "path": str(log), "seconds": 5}
    outcome: list[BaseException | object] = []
    try:
        client = GFClient.from_workers(server.url, prefer=ws[0].name, retries=0)

        def call() -> None:
            try:
                outcome.append(client.call_with("Idem.logged", kwargs, idempotency_key=key))
            except Exception as exc:
                outcome.append(exc)

        t = threading.Thread(target=call)
        t.start()
        deadline = time.monotonic() + 20
        while not runs(log) and time.monotonic() < deadline:
            time.sleep(0.05)
        ws[0].stop()  # SIGTERM, no grace: the pool closes under the running call
        t.join(30)
        assert len(outcome) == 1 and isinstance(outcome[0], Interrupted), outcome
        assert "may have run in part" in outcome[0].message
        assert runs(log) == {"7": 1}  # not sent on to worker b (retries=0)
        db = redis.Redis.from_url(server.url)
        try:
            entries = [db.get(k) for k in db.scan_iter("gf:idem:*")]
        finally:
            db.close()
        assert len(entries) == 1 and isinstance(entries[0], bytes)
        assert entries[0][:1] == b"R"  # the claim stays
    finally:
        for w in ws:
            w.stop()


def test_a_reused_key_is_refused_and_keys_are_scoped_by_token(
    root: Path, server: RedisServer
) -> None:
    ws = workers(root, server.url, ["a"], GF_TOKEN="team-a")
    wb = workers(root, server.url, ["b"], GF_TOKEN="team-b")
    key = "order-17-" + uuid.uuid4().hex
    try:
        a = GFClient(ws[0].url, token="team-a")
        assert a.call_with("Idem.echo", {"user": "alice"}, idempotency_key=key) == "secret of alice"
        assert a.call_with("Idem.echo", {"user": "alice"}, idempotency_key=key) == "secret of alice"
        with pytest.raises(IdempotencyKeyReused, match="first used for another call"):
            a.call_with("Idem.echo", {"user": "bob"}, idempotency_key=key)
        with pytest.raises(IdempotencyKeyReused):
            a.call_with("Idem.big", {"kib": 1}, idempotency_key=key)
        b = GFClient(wb[0].url, token="team-b")  # another credential: its own call runs
        assert b.call_with("Idem.echo", {"user": "bob"}, idempotency_key=key) == "secret of bob"
        db = redis.Redis.from_url(server.url)
        try:
            names = sorted(k.decode() for k in db.scan_iter("gf:idem:*"))
        finally:
            db.close()
        assert len(names) == 2 and all(n.endswith(":" + key) for n in names)
        assert not any("team-" in n for n in names)  # a hash of the token, never the token
    finally:
        for w in ws + wb:
            w.stop()


@pytest.mark.parametrize(
    ("kib", "env"),
    [(2048, {}), (64, {"GF_IDEMPOTENCY_MAX_RESULT_KB": "16"})],
    ids=["default-1MiB", "setting-16KiB"],
)
def test_a_result_too_large_to_keep_is_not_run_again(
    root: Path, server: RedisServer, kib: int, env: dict[str, str]
) -> None:
    """Over the bound (1 MiB by default; GF_IDEMPOTENCY_MAX_RESULT_KB sets it: a 64 KiB
    answer is kept by default, not under a 16 KiB setting) only the size is recorded."""
    ws = workers(root, server.url, ["a"], **env)
    key = "big-" + uuid.uuid4().hex
    try:
        c = GFClient(ws[0].url, timeout=30)
        assert len(c.call_with("Idem.big", {"kib": kib}, idempotency_key=key)) == kib * 1024
        time.sleep(0.2)  # the outcome is written after the answer
        with pytest.raises(ResultNotKept, match="larger than the workers keep"):
            c.call_with("Idem.big", {"kib": kib}, idempotency_key=key)
        db = redis.Redis.from_url(server.url)
        try:
            sizes = [db.strlen(k) for k in db.scan_iter("gf:idem:*")]
        finally:
            db.close()
        assert sizes and max(sizes) < 200  # the size only, not 2 MiB
    finally:
        for w in ws:
            w.stop()


def test_a_full_redis_refuses_the_claim_with_a_clear_503(server: RedisServer) -> None:
    db = redis.Redis.from_url(server.url)
    db.config_set("maxmemory-policy", "noeviction")
    db.config_set("maxmemory", "1")  # below what it uses already: every write is refused

    async def claim() -> None:
        record = AsyncOutcomeRecord(server.url, timeout=2.0)
        try:
            await record.claim("k", "w 1 1")
        finally:
            await record.aclose()

    try:
        with pytest.raises(StorageUnavailable, match="maxmemory") as err:
            asyncio.run(claim())
        assert err.value.http_status == 503
    finally:
        db.config_set("maxmemory", "0")
        db.close()


@pytest.mark.parametrize("key", ["caf\u00e9", "a\nb", "a\x00b", "k" * 201, "", "a b"])
def test_the_client_refuses_a_bad_key_before_sending(key: str) -> None:
    port = free_port()  # nothing listens: a request sent would be ServerUnavailable
    with pytest.raises(BadIdempotencyKey, match="must be 1-200 visible ASCII"):
        GFClient(f"http://127.0.0.1:{port}").call_with(
            "Idem.echo", {"user": "x"}, idempotency_key=key
        )


def test_the_final_error_carries_each_workers_503_message(root: Path, server: RedisServer) -> None:
    ws = workers(root, server.url, ["a", "b"], GF_STORAGE_TIMEOUT="0.5")
    try:
        client = GFClient.from_workers(server.url, connect_retries=0)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(ServerUnavailable) as err:
                client.call("Idem.echo", user="x")
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        text = err.value.message
        assert text.count("StorageUnavailable: Redis at") == 2, text
        assert "did not answer within 0.5s" in text
    finally:
        for w in ws:
            w.stop()


def test_waiting_duplicates_back_off(root: Path, server: RedisServer, log: Path) -> None:
    ws = workers(root, server.url, ["a"])
    key = "herd-" + uuid.uuid4().hex
    kwargs = {"seq": 3, "path": str(log), "seconds": 3}
    db = redis.Redis.from_url(server.url)
    try:
        c = GFClient(ws[0].url, timeout=30)
        first = threading.Thread(
            target=lambda: c.call_with("Idem.logged", kwargs, idempotency_key=key)
        )
        first.start()
        while not runs(log):
            time.sleep(0.02)
        db.config_resetstat()
        waiters = [
            threading.Thread(target=lambda: c.call_with("Idem.logged", kwargs, idempotency_key=key))
            for _ in range(10)
        ]
        for t in [*waiters]:
            t.start()
        for t in [first, *waiters]:
            t.join()
        gets = int(db.info("commandstats").get("cmdstat_get", {}).get("calls", 0))
        # 10 waiters for about 3 s: polling every 20 ms would be ~1,500 GETs; backing off
        # (20 ms doubling to 500 ms) is about 10 each
        assert gets < 250, gets
        assert runs(log) == {"3": 1}
    finally:
        db.close()
        for w in ws:
            w.stop()


def _leave(url: str, key: str, body: bytes, how: str) -> None:
    """Send a keyed duplicate on a raw socket and leave the way ``how`` says."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = (
        b"POST /call/Idem.logged HTTP/1.1\r\nHost: w\r\nContent-Type: application/json\r\n"
        + f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        if how == "split":  # the close reaches tornado before the body's read is handled
            sock.sendall(head)
            time.sleep(0.3)
            sock.sendall(body)
            return
        tail = {"close": b"", "crlf": b"\r\n", "pipelined": b"GET /healthz HTTP/1.1\r\n\r\n"}
        sock.sendall(head + body + tail[how])  # bytes left unread: no close callback
        time.sleep(1.0)  # it waits on the running call's claim now


def _left(worker: ServerProcess, key: str) -> bool:
    return any(
        key in line and "caller left while it waited" in line for line in worker.log().splitlines()
    )


def test_a_duplicate_whose_client_left_stops_waiting(
    root: Path, server: RedisServer, log: Path
) -> None:
    """Duplicates wait on keys another worker runs; their clients leave (a plain close, a
    CRLF or a pipelined request after the body, a close right after a split send); then the
    running worker dies. Before, the waiters went on for nobody, took the keys over and ran
    the calls again (and after the first fix, the three last ways of leaving still did)."""
    ways = ["close", "crlf", "pipelined", "split"]
    # one worker process more than calls: a function may hold all but one of them
    a, b = workers(root, server.url, ["a", "b"], GF_WORKERS=str(len(ways) + 1))
    keys = {how: f"gone-{how}-" + uuid.uuid4().hex for how in ways}
    running = []
    try:
        for seq, how in enumerate(ways):
            kwargs = {"seq": seq, "path": str(log), "seconds": 60}

            def first_call(kw: dict[str, object] = kwargs, k: str = keys[how]) -> None:
                with contextlib.suppress(ServerUnavailable):  # its worker is killed under it
                    GFClient(a.url, timeout=90).call_with("Idem.logged", kw, idempotency_key=k)

            running.append(threading.Thread(target=first_call, daemon=True))
            running[-1].start()
            deadline = time.monotonic() + 30
            while str(seq) not in runs(log) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert runs(log)[str(seq)] == 1
            _leave(b.base_url, keys[how], json.dumps(kwargs).encode(), how)
            deadline = time.monotonic() + 10
            while not _left(b, keys[how]) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _left(b, keys[how]), (how, b.log()[-3000:])
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)  # mid-call: a waiter would take the keys over now
        time.sleep(6.0)  # heartbeats every 1 s; a waiter probes its owner every 1 s
        assert runs(log) == {str(seq): 1 for seq in range(len(ways))}
        assert "running it again" not in b.log()
    finally:
        a.stop()
        b.stop()
