"""The HTTP edge under hostile uploads and odd JSON, against real server processes.

- Bodies are judged when their headers arrive (issue 9 item 3): 30 connections that start
  a 10 MiB body without a token do not grow a ``gf serve`` process's RSS (read from
  ``/proc/<pid>/status``) by more than 20 MiB; a stalled upload is cut after
  ``GF_BODY_TIMEOUT``; an idle connection after ``GF_IDLE_TIMEOUT``; any body over the
  limit, 100 MiB included, declared or chunked, gets the 413 JSON error.
- JSON depth and numbers (item 5), inline and isolated: 256 levels deep is a 400 with one
  log line, 10**30 arrives as an int and comes back exactly, NaN or Infinity in a result is
  ``ResultNotFinite`` naming where it was.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest
import requests

from tests.integration.serve_support import REPO, ServerProcess, build_registry

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
TOKEN = "limits-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY_TIMEOUT = 1.5
IDLE_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def packages_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("limits") / "GlobalFunc"
    shutil.copytree(
        REPO / "packages" / "Base", root / "Base", ignore=shutil.ignore_patterns("__pycache__")
    )
    repo = git.Repo.init(root, initial_branch="master")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "email", "tests@globalfunc.local")
        cfg.set_value("user", "name", "GlobalFunc Tests")
    (root / ".gitignore").write_text(".globalfunc/\n__pycache__/\n")
    repo.git.add(A=True)
    repo.index.commit("initial")
    return root


@pytest.fixture(scope="module")
def guarded(
    packages_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``gf serve`` (inline) with a token from a file and short body and idle timeouts."""
    tmp = tmp_path_factory.mktemp("guarded")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)  # a file others can read refuses to start
    server = ServerProcess.gf_serve(
        packages_root,
        tmp,
        "--mode",
        "inline",
        env={
            "GF_TOKEN_FILE": str(token_file),
            "GF_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "GF_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        },
    ).start()
    yield server
    server.stop()


def _head(path: str, length: int, *, token: bool) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {TOKEN}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of one response read from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return int(status_line.split()[1]), headers, json.loads(body)


def _wait_closed(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (reads and drops anything it sends)."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {limit}s") from None
    return time.monotonic() - start


# -- item 3: bodies judged at the headers --------------------------------------------------------
def test_unauthenticated_uploads_do_not_grow_the_servers_memory(guarded: ServerProcess) -> None:
    small = {"pack_func": "Base.slug", "kwargs": {"text": "x" * 1000}}
    for _ in range(20):  # warm up: the first requests allocate what every request shares
        assert requests.post(guarded.url + "gfgo/", json=small, headers=AUTH).status_code == 200
    before = guarded.rss_kib()
    socks = []
    try:
        for _ in range(30):
            sock = socket.create_connection(guarded.address, timeout=10)
            sock.sendall(_head("/gfgo/", 10 * MiB, token=False))
            socks.append(sock)
        chunk = b"x" * 65536
        sent = 0
        for sock in socks:  # 4 MiB of each 10 MiB body: 120 MiB in all
            try:
                for _ in range(64):
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:  # the server stopped reading what it refused: fine
                pass
        during = guarded.rss_kib()
        answers = [_read_response(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.5)
    after = guarded.rss_kib()
    assert sent >= 30 * MiB, f"only {sent} bytes could be sent"
    for status, headers, body in answers:
        assert status == 401 and body["error"] == "Unauthorized"
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        assert headers["www-authenticate"].startswith("Bearer")
    print(f"RSS before {before} KiB, during +{during - before} KiB, after +{after - before} KiB")
    assert (during - before) <= 20 * 1024, f"RSS grew {(during - before) / 1024:.1f} MiB"
    assert (after - before) <= 20 * 1024, f"RSS grew {(after - before) / 1024:.1f} MiB"
    # and the server still answers
    assert requests.post(guarded.url + "gfgo/", json=small, headers=AUTH).status_code == 200


@pytest.mark.parametrize("path", ["/gfgo/", "/call/Base.slug", "/", "/functions"])
def test_a_hundred_mib_declared_body_gets_the_413_json_before_it_is_sent(
    guarded: ServerProcess, path: str
) -> None:
    with socket.create_connection(guarded.address, timeout=10) as sock:
        sock.sendall(_head(path, 100 * MiB, token=True))
        status, headers, body = _read_response(sock)
    assert status == 413 and body["error"] == "RequestTooLarge"
    assert body["details"] == {"size": 100 * MiB, "limit": 10 * MiB}
    assert "GF_MAX_BODY" in body["message"] and headers["connection"] == "close"


def test_a_hundred_mib_body_sent_in_full_gets_the_413_json_not_a_reset(
    guarded: ServerProcess,
) -> None:
    r = requests.post(guarded.url + "gfgo/", data=b"x" * (100 * MiB), headers=AUTH, timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "RequestTooLarge"


def test_a_chunked_body_over_the_limit_gets_the_413_json(guarded: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(12 * 16):  # 12 MiB
            yield b"x" * 65536

    r = requests.post(guarded.url + "call/Base.slug", data=chunks(), headers=AUTH, timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "RequestTooLarge"
    assert r.json()["details"]["limit"] == 10 * MiB


def test_a_wrong_token_is_refused_before_the_body_on_every_route(guarded: ServerProcess) -> None:
    for path in ("/gfgo/", "/", "/nope"):
        with socket.create_connection(guarded.address, timeout=10) as sock:
            sock.sendall(_head(path, 5 * MiB, token=False))
            status, _, body = _read_response(sock)
        assert status == 401 and body["error"] == "Unauthorized", path


def test_a_stalled_upload_is_cut_after_the_body_timeout(guarded: ServerProcess) -> None:
    with socket.create_connection(guarded.address, timeout=10) as sock:
        sock.sendall(_head("/gfgo/", 1000, token=True) + b'{"pack_func": "Base.slug", ')
        waited = _wait_closed(sock, BODY_TIMEOUT + 10)
    assert BODY_TIMEOUT * 0.8 <= waited <= BODY_TIMEOUT + 3, waited
    assert requests.get(guarded.url + "healthz").status_code == 200


def test_an_idle_connection_is_closed_after_the_idle_timeout(guarded: ServerProcess) -> None:
    with socket.create_connection(guarded.address, timeout=10) as sock:
        body = b'{"text": "Hello World"}'
        sock.sendall(_head("/call/Base.slug", len(body), token=True) + body)
        status, _, answer = _read_response(sock)
        assert status == 200 and answer == {"result": "hello-world"}
        waited = _wait_closed(sock, IDLE_TIMEOUT + 10)  # keep-alive, then nothing
    assert IDLE_TIMEOUT * 0.8 <= waited <= IDLE_TIMEOUT + 3, waited
    with socket.create_connection(guarded.address, timeout=10) as sock:  # never a request
        waited = _wait_closed(sock, IDLE_TIMEOUT + 10)
    assert IDLE_TIMEOUT * 0.8 <= waited <= IDLE_TIMEOUT + 3, waited


# -- item 5: JSON depth and numbers, inline and isolated ---------------------------------------
@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module", params=["inline", "isolated"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, storage_url: str
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp(request.param)
    srv = ServerProcess.serve_call(
        tmp,
        storage_url=storage_url,
        branch="master",
        cache_dir=str(tmp / "cache"),
        mode=request.param,
        workers=1,
    ).start()
    yield srv
    srv.stop()


def _post(server: ServerProcess, path: str, raw: bytes) -> requests.Response:
    return requests.post(server.url + path.lstrip("/"), data=raw, timeout=30)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [256, 100_000])
def test_deep_json_is_a_400_with_one_log_line(server: ServerProcess, depth: int) -> None:
    assert requests.get(server.url + "healthz").status_code == 200
    time.sleep(0.2)  # the start-up lines are written by now
    before = server.log().count("\n")
    for path, raw in [
        ("/gfgo/", b'{"pack_func": "Codec.echo", "kwargs": {"value": ' + _nested(depth) + b"}}"),
        ("/call/Codec.echo", b'{"value": ' + _nested(depth) + b"}"),
        ("/", _nested(depth)),
    ]:
        r = _post(server, path, raw)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == "NestingTooDeep" and r.json()["details"] == {"limit": 64}
    time.sleep(0.2)
    new = server.log().splitlines()[before:]
    assert len(new) == 3 and all("400" in line for line in new), new
    assert "Traceback" not in server.log()


def test_nesting_within_the_limit_passes(server: ServerProcess) -> None:
    value = _nested(60)
    r = _post(server, "/call/Codec.echo", b'{"value": ' + value + b"}")
    assert r.status_code == 200 and r.content == b'{"result":' + value + b"}"


@pytest.mark.parametrize(
    "number", [10**30, -(10**30), 2**64, 2**63, 123456789012345678901234567890]
)
def test_integers_of_any_size_arrive_as_int_and_return_exactly(
    server: ServerProcess, number: int
) -> None:
    raw = json.dumps({"pack_func": "Codec.type_name", "kwargs": {"value": number}}).encode()
    assert _post(server, "/gfgo/", raw).json() == "int"
    raw = json.dumps({"pack_func": "Codec.echo", "kwargs": {"value": [number, {"n": number}]}})
    r = _post(server, "/gfgo/", raw.encode())
    assert r.status_code == 200
    assert r.content == json.dumps([number, {"n": number}], separators=(",", ":")).encode()
    r = _post(server, "/call/Codec.echo", json.dumps({"value": number}).encode())
    assert json.loads(r.content) == {"result": number}


@pytest.mark.parametrize(
    ("kwargs", "what", "where"),
    [
        ({"kind": "nan"}, "NaN", "result"),
        ({"kind": "inf", "nested": True}, "Infinity", "result['values'][1]"),
        ({"kind": "-inf"}, "-Infinity", "result"),
    ],
)
def test_nan_or_infinity_in_a_result_is_a_clear_error(
    server: ServerProcess, kwargs: dict[str, Any], what: str, where: str
) -> None:
    r = _post(server, "/call/Numeric.non_finite", json.dumps(kwargs).encode())
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "ResultNotFinite"
    assert what in body["message"] and where in body["message"]
    assert body["details"] == {"value": what, "where": where}
    raw = json.dumps({"pack_func": "Numeric.non_finite", "kwargs": kwargs}).encode()
    assert _post(server, "/gfgo/", raw).json()["error"] == "ResultNotFinite"
