"""GFClient over several workers, without Redis: round robin, fail-over, what is never resent.

Small stdlib HTTP servers on loopback ports play the workers (so connections, refusals
and dropped connections are real); a stub stands in for the Redis worker directory.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from globalfunc.client import GFClient
from globalfunc.errors import (
    BadArguments,
    ExecutionError,
    ServerUnavailable,
    StorageUnavailable,
)
from globalfunc.workers import WorkerInfo


class FakeWorker:
    """A loopback HTTP server answering from a queue (default ``{"result": <name>}``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answers: list[tuple[int, bytes]] = []
        self.seen: list[tuple[str, str]] = []
        worker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                worker.seen.append((self.command, self.path))
                status, out = (
                    worker.answers.pop(0)
                    if worker.answers
                    else (200, json.dumps({"result": worker.name, "functions": []}).encode())
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Hangup:
    """Accepts a connection, reads the request, closes without answering (a crash mid-call)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.requests = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if conn.recv(65536):
                    self.requests += 1

    def stop(self) -> None:
        self.sock.close()


def entry(name_host: str, url: str, port: int) -> WorkerInfo:
    return WorkerInfo.new(
        host=name_host, version="v1", memory_gb=1, gpu_gb=0, port=port, url=url, now=0.0
    )


class StubDirectory:
    """What GFClient needs of a WorkerDirectory: ``url``, ``live()``, ``close()``."""

    url = "redis://stub/0"

    def __init__(self, *lists: list[WorkerInfo]) -> None:
        self.lists = list(lists)
        self.calls = 0
        self.fail_after: int | None = None

    def live(self) -> list[WorkerInfo]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise StorageUnavailable("Redis at redis://stub/0 is unreachable")
        return self.lists[0] if len(self.lists) == 1 else self.lists.pop(0)

    def close(self) -> None:
        pass


@pytest.fixture
def workers() -> Iterator[Callable[[str], FakeWorker]]:
    started: list[FakeWorker] = []

    def start(name: str) -> FakeWorker:
        started.append(FakeWorker(name))
        return started[-1]

    yield start
    for w in started:
        w.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_for(directory: StubDirectory, **kwargs: Any) -> GFClient:
    return GFClient.from_workers(directory=directory, backoff=0.01, **kwargs)  # type: ignore[arg-type]


def test_calls_go_round_robin(workers: Callable[[str], FakeWorker]) -> None:
    a, b = workers("a"), workers("b")
    client = client_for(StubDirectory([entry("a", a.url, a.port), entry("b", b.url, b.port)]))
    got = [client.call("P.f") for _ in range(6)]
    assert sorted(got) == ["a"] * 3 + ["b"] * 3
    assert all(x != y for x, y in itertools.pairwise(got))
    assert [w.name for w in client.workers()] == [
        f"a_v1_1G_0G_{a.port}",
        f"b_v1_1G_0G_{b.port}",
    ]


def test_preferred_workers_first(workers: Callable[[str], FakeWorker]) -> None:
    a, b, c = workers("a"), workers("b"), workers("c")
    infos = [entry("a", a.url, a.port), entry("b", b.url, b.port), entry("c", c.url, c.port)]
    client = client_for(StubDirectory(infos), prefer="[bc]_*")
    assert sorted(client.call("P.f") for _ in range(4)) == ["b", "b", "c", "c"]
    assert a.seen == []
    by_port = client_for(StubDirectory(infos), prefer=lambda w: w.port == a.port)
    assert {by_port.call("P.f") for _ in range(3)} == {"a"}


def test_an_unreachable_worker_is_skipped_and_tried_last(
    workers: Callable[[str], FakeWorker], caplog: pytest.LogCaptureFixture
) -> None:
    live = workers("live")
    dead_port = closed_port()
    dead = entry("dead", f"http://127.0.0.1:{dead_port}/", dead_port)
    client = client_for(StubDirectory([dead, entry("live", live.url, live.port)]), prefer="dead_*")
    with caplog.at_level(logging.WARNING, logger="globalfunc.client"):
        assert [client.call("P.f") for _ in range(4)] == ["live"] * 4
        assert client.functions() == []
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and dead.name in warnings[0] and "Connection" in warnings[0]


def test_503_fails_over_but_answers_are_final(workers: Callable[[str], FakeWorker]) -> None:
    a, b = workers("a"), workers("b")
    client = client_for(
        StubDirectory([entry("a", a.url, a.port), entry("b", b.url, b.port)]), prefer="a_*"
    )
    a.answers = [(503, b'{"error": "StorageUnavailable", "message": "registry down"}')]
    assert client.call("P.f") == "b"
    assert len(a.seen) == 1 and len(b.seen) == 1
    a.answers = [(500, b'{"error": "ExecutionError", "message": "P.f raised ValueError"}')]
    with pytest.raises(ExecutionError, match="raised ValueError"):
        client.call("P.f")
    a.answers = [(400, b'{"error": "BadArguments", "message": "no such keyword"}')]
    with pytest.raises(BadArguments):
        client.call("P.f", nope=1)
    assert len(a.seen) == 3 and len(b.seen) == 1  # neither error was sent to b


def test_a_call_lost_after_sending_is_not_resent(workers: Callable[[str], FakeWorker]) -> None:
    hangup, b = Hangup(), workers("b")
    try:
        infos = [entry("hangup", hangup.url, hangup.port), entry("b", b.url, b.port)]
        client = client_for(StubDirectory(infos), prefer="hangup_*")
        with pytest.raises(ServerUnavailable, match="may have run") as info:
            client.call("P.f")
        assert "hangup_v1_1G_0G_" in str(info.value) and hangup.requests == 1
        assert b.seen == []
        assert client.functions() == []  # a read is safe to send again
        assert b.seen == [("GET", "/functions")]
    finally:
        hangup.stop()


def test_exhaustion_reloads_then_names_every_worker_tried() -> None:
    ports = [closed_port(), closed_port()]
    infos = [entry(f"w{i}", f"http://127.0.0.1:{p}/", p) for i, p in enumerate(ports)]
    directory = StubDirectory(infos)
    client = client_for(directory, connect_retries=0)
    with pytest.raises(ServerUnavailable) as info:
        client.call("P.f")
    message = str(info.value)
    assert "no GlobalFunc worker took POST /call/P.f; tried 2" in message
    assert all(i.name in message for i in infos)
    assert info.value.details["tried"] == [i.name for i in infos]
    assert directory.calls == 2  # at the start, then again when every worker had failed


def test_a_worker_found_on_exhaustion_takes_the_call(workers: Callable[[str], FakeWorker]) -> None:
    late = workers("late")
    port = closed_port()
    dead = entry("dead", f"http://127.0.0.1:{port}/", port)
    client = client_for(StubDirectory([dead], [dead, entry("late", late.url, late.port)]))
    assert client.call("P.f") == "late"


def test_no_live_workers() -> None:
    with pytest.raises(ServerUnavailable, match=r"no live GlobalFunc workers.*gf worker"):
        client_for(StubDirectory([])).call("P.f")


def test_the_list_is_refreshed_and_kept_when_redis_is_down(
    workers: Callable[[str], FakeWorker], caplog: pytest.LogCaptureFixture
) -> None:
    a = workers("a")
    directory = StubDirectory([entry("a", a.url, a.port)])
    client = client_for(directory, refresh=0.0)
    client.call("P.f")
    client.call("P.f")
    assert directory.calls == 3  # the start, then once per call (refresh=0)
    directory.fail_after = 3
    with caplog.at_level(logging.WARNING, logger="globalfunc.client"):
        assert client.call("P.f") == "a"
    assert "keeping the last one (1 workers)" in caplog.text


def test_unreachable_redis_at_the_start() -> None:
    with pytest.raises(StorageUnavailable, match="worker directory"):
        GFClient.from_workers(f"redis://127.0.0.1:{closed_port()}/0", redis_timeout=1)
    with pytest.raises(Exception, match="Redis URL"):
        GFClient.from_workers()
