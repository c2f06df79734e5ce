"""GFClient without a GlobalFunc server: retries, error mapping, local validation.

A tiny stdlib HTTP server on a loopback port plays the server so retry counts are real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from globalfunc.client import GFClient
from globalfunc.errors import (
    BadArguments,
    ExecutionError,
    FunctionNotFound,
    InvalidName,
    InvalidRequest,
    ServerUnavailable,
)


class Script(BaseHTTPRequestHandler):
    """Answers from a queue of (status, body) and records every request it saw."""

    answers: ClassVar[list[tuple[int, bytes]]] = []
    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Script.seen.append((self.command, self.path, dict(self.headers), body))
        status, out = Script.answers.pop(0) if Script.answers else (200, b"{}")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[str]:
    Script.answers = []
    Script.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _err(name: str, message: str, **details: Any) -> bytes:
    return json.dumps({"error": name, "message": message, "details": details}).encode()


def test_get_is_retried_on_503_until_it_succeeds(fake: str) -> None:
    Script.answers = [(503, b"busy"), (503, b"busy"), (200, b'{"functions": [{"name": "A.b"}]}')]
    client = GFClient(fake, retries=2, backoff=0.01)
    assert client.functions() == [{"name": "A.b"}]
    assert len(Script.seen) == 3


def test_get_gives_up_after_its_retries(fake: str) -> None:
    Script.answers = [(503, b"busy")] * 5
    with pytest.raises(ServerUnavailable, match="503"):
        GFClient(fake, retries=1, backoff=0.01).search("x")
    assert len(Script.seen) == 2


def test_calls_are_never_retried(fake: str) -> None:
    Script.answers = [(503, b"busy"), (200, b'{"result": 1}')]
    with pytest.raises(ServerUnavailable):
        GFClient(fake, retries=3, backoff=0.01).call("Base.slug", text="x")
    assert len(Script.seen) == 1


def test_error_bodies_become_the_same_error_classes(fake: str) -> None:
    Script.answers = [
        (404, _err("FunctionNotFound", "no registered function 'A.b'")),
        (400, _err("BadArguments", "arguments do not fit", signature="A.b(x)")),
        (500, _err("ExecutionError", "A.b raised ValueError: v", exc_type="ValueError")),
    ]
    client = GFClient(fake)
    with pytest.raises(FunctionNotFound):
        client.call("A.b")
    with pytest.raises(BadArguments) as bad:
        client.call("A.b", y=1)
    assert bad.value.details["signature"] == "A.b(x)"
    with pytest.raises(ExecutionError) as failed:
        client.call("A.b")
    assert failed.value.details["exc_type"] == "ValueError"


def test_request_shapes_token_and_tagged_arguments(fake: str) -> None:
    Script.answers = [(200, b'{"result": {"__gf__": "bytes", "b64": "AAE="}}'), (200, b"[1, 2]")]
    client = GFClient(fake + "/", token="tok")
    assert client.call("Base.echo", value=(1, b"\x00")) == b"\x00\x01"
    assert client.call_args("Base.positional", 1, 2, d=3) == [1, 2]
    (m1, p1, h1, b1), (m2, p2, h2, b2) = Script.seen
    assert (m1, p1) == ("POST", "/call/Base.echo")
    assert h1["Authorization"] == "Bearer tok"
    assert json.loads(b1) == {
        "value": {"__gf__": "tuple", "items": [1, {"__gf__": "bytes", "b64": "AA=="}]}
    }
    assert (m2, p2) == ("POST", "/gfgo/") and h2["X-GF-Codec"] == "tagged"
    assert json.loads(b2) == {"pack_func": "Base.positional", "args": [1, 2], "kwargs": {"d": 3}}


def test_non_json_answers_are_server_unavailable(fake: str) -> None:
    Script.answers = [(502, b"<html>bad gateway</html>"), (200, b"not json")]
    client = GFClient(fake, retries=0)
    with pytest.raises(ServerUnavailable, match="bad gateway"):
        client.health()
    with pytest.raises(ServerUnavailable, match="not JSON"):
        client.health()


def test_names_and_arguments_are_checked_before_sending(fake: str) -> None:
    client = GFClient(fake)
    with pytest.raises(InvalidName):
        client.call("Base.__init__")
    with pytest.raises(InvalidName):
        client.call("no_package")
    with pytest.raises(InvalidRequest, match="cannot be sent"):
        client.call("Base.slug", text=object())
    assert Script.seen == []


def test_unreachable_server(unused_port: int) -> None:
    client = GFClient(f"http://127.0.0.1:{unused_port}", retries=1, backoff=0.01, timeout=5)
    with pytest.raises(ServerUnavailable, match="was not sent"):
        client.call("Base.slug", text="x")
    with pytest.raises(ServerUnavailable, match="cannot reach"):
        client.functions()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_urls_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        GFClient("ftp://host/")
    assert GFClient("127.0.0.1:8000").url == "127.0.0.1:8000"
