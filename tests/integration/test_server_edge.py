"""The server's edge under attack (review "attack1"), with real ``gf serve`` processes.

- 3a: ``GF_TOKEN`` is in no process the server starts (``git cat-file``, workers);
- 3c: a ``GF_TOKEN_FILE`` its group or others can read refuses to start;
- 7: a ``Content-Length`` of 2**64 or more gets a 413 JSON answer;
- 10: integers of any size round-trip through ``/call/``, inline and isolated;
- 13: calls in flight when SIGTERM arrives (running or waiting for a worker) get a 503
  JSON answer, not a closed socket, and the stop still takes under 5 s.

Not here: the file-descriptor limit (test_server_fd_limit.py) and the registry files'
modes (test_store_modes.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.integration.serve_support import REPO, ServerProcess, make_repo

pytestmark = pytest.mark.integration

TOKEN = "edge-token-" + "5" * 20
FUNCS = REPO / "tests" / "data" / "funcs"


def _repo(path: Path, source: Path) -> Path:
    """A git packages repository of ``source``, without the state a server left in it."""
    root = make_repo(path, source)
    shutil.rmtree(root / ".globalfunc", ignore_errors=True)
    return root


def _descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (children of every task, recursively)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                kids = {int(p) for p in (task / "children").read_text().split()}
            except (FileNotFoundError, ProcessLookupError):
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _environ(pid: int) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return "?"


# -- 3a: the token in no child's environment ---------------------------------------------------
@pytest.mark.parametrize("mode", ["inline", "isolated"])
def test_no_process_the_server_starts_holds_gf_token(tmp_path: Path, mode: str) -> None:
    root = _repo(tmp_path / "pk", FUNCS)
    server = ServerProcess.gf_serve(
        root, tmp_path, "--mode", mode, env={"GF_TOKEN": TOKEN, "GF_WORKERS": "2"}
    ).start()
    try:
        r = requests.post(
            server.url + "call/Codec.echo",
            json={"value": 1},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        children = _descendants(server.pid)
        assert children, "the server started no process: nothing was checked"
        commands = {pid: _cmdline(pid) for pid in children}
        if mode == "isolated":  # the workers were looked at
            assert len(children) >= 2, commands
        holding = [
            commands[pid]
            for pid in children
            if any(v.startswith(b"GF_TOKEN=") for v in _environ(pid) or [])
        ]
        assert not holding, f"GF_TOKEN in the environment of {holding} (all: {commands})"
    finally:
        server.stop()


# -- 3c: a token file others can read ----------------------------------------------------------
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_token_file_others_can_read_refuses_to_start(tmp_path: Path, mode: int) -> None:
    root = _repo(tmp_path / "pk", FUNCS)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(mode)
    result = ServerProcess.gf_serve(root, tmp_path, env={"GF_TOKEN_FILE": str(token_file)}).run()
    err = result.stderr.decode()
    assert result.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("gf: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    line = lines[0]
    assert str(token_file) in line and f"{mode:04o}" in line and "chmod 600" in line, line
    assert TOKEN not in err


def test_a_private_token_file_serves(tmp_path: Path) -> None:
    root = _repo(tmp_path / "pk", FUNCS)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    server = ServerProcess.gf_serve(root, tmp_path, env={"GF_TOKEN_FILE": str(token_file)})
    server.start()
    try:
        r = requests.post(
            server.url + "call/Codec.echo",
            json={"value": 2},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json() == {"result": 2}
    finally:
        server.stop()


# -- 7 and 10: numbers past 64 bits at the edge ------------------------------------------------
@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """One inline and one isolated ``gf serve`` over the test functions."""
    tmp = tmp_path_factory.mktemp("edge")
    root = _repo(tmp / "pk", FUNCS)
    started: dict[str, ServerProcess] = {}
    try:
        for mode in ("inline", "isolated"):
            started[mode] = ServerProcess.gf_serve(
                root,
                tmp,
                "--mode",
                mode,
                env={"GF_STORAGE_URL": f"sqlite://{tmp / (mode + '.db')}", "GF_WORKERS": "1"},
            ).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


def _raw_request(server: ServerProcess, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (no body) on a fresh connection; the status, headers and body back."""
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    assert data, "no answer at all (the connection closed without one)"
    header, _, body = data.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


@pytest.mark.parametrize("path", ["/call/Codec.echo", "/gfgo/", "/v1/Codec.echo", "/nowhere"])
@pytest.mark.parametrize("length", ["99999999999999999999999", str(2**64), str(2**63)])
def test_a_content_length_past_64_bits_is_a_413_json_answer(
    servers: dict[str, ServerProcess], path: str, length: str
) -> None:
    server = servers["inline"]
    status, headers, body = _raw_request(
        server,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n",
    )
    assert status == 413, body
    assert headers["content-type"].startswith("application/json")
    assert len(body) == int(headers["content-length"])
    answer = json.loads(body)
    message = answer["header"]["message"] if path.startswith("/v1/") else answer["message"]
    assert length in message and "GF_MAX_BODY" in message, answer  # the size, exactly
    if not path.startswith("/v1/"):  # the ase routes answer in the ase shape
        assert answer["error"] == "RequestTooLarge", answer
    assert "Uncaught exception" not in server.log()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("mode", ["inline", "isolated"])
@pytest.mark.parametrize("digits", [309, 1000, 4000])
def test_an_integer_of_hundreds_of_digits_round_trips(
    servers: dict[str, ServerProcess], mode: str, digits: int
) -> None:
    server = servers[mode]
    big = int(("9" + "1234567890" * (digits // 10 + 1))[:digits])
    assert len(str(big)) == digits
    for value in (big, -big, [big, {"n": big}]):
        raw = json.dumps({"value": value}).encode()
        r = requests.post(
            server.url + "call/Codec.echo",
            data=raw,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 200, r.text[:300]
        assert json.loads(r.content) == {"result": value}  # the standard parser: exact
    r = requests.post(server.url + "call/Codec.echo", data=b'{"value": 1e400}', timeout=30)
    assert r.status_code == 400 and "infinity" in r.json()["message"]


# -- 13: SIGTERM answers the calls in flight ---------------------------------------------------
def test_calls_in_flight_at_sigterm_get_an_answer(tmp_path: Path) -> None:
    """At SIGTERM every call in flight is answered before the connections close: the
    running one 502 ``Interrupted`` (it may have run in part), the queued ones 503
    ``Overloaded`` (nothing ran: safe to send again)."""
    root = _repo(tmp_path / "pk", FUNCS)
    server = ServerProcess.gf_serve(
        root,
        tmp_path,
        "--mode",
        "isolated",
        env={"GF_WORKERS": "2", "GF_CALL_TIMEOUT": "60", "GF_FUNCTION_CONCURRENCY": "1"},
    ).start()
    try:
        with ThreadPoolExecutor(3) as pool:
            # one runs (holds the only slot of its function), two wait behind it
            calls = [
                pool.submit(requests.post, server.url + "call/Misbehave.hang", json={}, timeout=20)
                for _ in range(3)
            ]
            time.sleep(1.5)
            assert not any(c.done() for c in calls)
            stopped = time.monotonic()
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            answers = [c.result(timeout=10) for c in calls]  # a closed socket would raise
            assert server.proc.wait(timeout=10) == 0
            took = time.monotonic() - stopped
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [502, 503, 503], [(r.status_code, r.text) for r in answers]
        for r in answers:
            body = r.json()
            if r.status_code == 502:
                assert body["error"] == "Interrupted" and "may have run" in body["message"], body
            else:
                assert body["error"] == "Overloaded" and "stopping" in body["message"], body
                assert r.headers["Retry-After"].isdigit()
        assert took < 5.0, f"the stop took {took:.1f}s"
    finally:
        server.stop(signal.SIGKILL)
