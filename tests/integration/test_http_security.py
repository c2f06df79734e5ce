"""Who may call the server and what its processes give away, with real ``gf serve`` processes.

- Serving on a non-loopback address without a token refuses to start unless ``--insecure``
  (``GF_INSECURE``), with one line that says how to set a token (issue 9 item 6).
- ``GF_TOKEN_FILE`` holds the token; an unreadable or empty file refuses to start; the token
  flow of the README works with curl-style requests and with ``GFClient`` (item 4).
- The server process is not dumpable, and ``GF_TOKEN`` is not in what it passes on.
- ``/metrics`` with ``--processes 2`` counts the calls of both processes (issue 10 item 6).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import git
import pytest
import requests

from globalfunc.client import GFClient
from globalfunc.errors import Unauthorized
from tests.integration.serve_support import REPO, ServerProcess, build_registry

pytestmark = pytest.mark.integration

TOKEN = "security-token-9876543210"


@pytest.fixture(scope="module")
def packages_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("security") / "GlobalFunc"
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


def _one_line_error(result: object) -> str:
    code = result.returncode  # type: ignore[attr-defined]
    err = result.stderr.decode()  # type: ignore[attr-defined]
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("gf: error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- item 6: no open shell on the network ----------------------------------------------------
@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0"], {}),
        (["--host", "::"], {}),
        (["--host", "192.0.2.10"], {}),  # a LAN-style address: refused before any bind
        ([], {"GF_HOST": "0.0.0.0"}),
    ],
)
def test_non_loopback_without_a_token_refuses_to_start(
    packages_root: Path, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    line = _one_line_error(ServerProcess.gf_serve(packages_root, tmp_path, *args, env=env).run())
    assert "without a token" in line
    assert "GF_TOKEN=" in line and "GF_TOKEN_FILE=" in line and "--insecure" in line


@pytest.mark.parametrize(
    ("args", "env"), [(["--insecure"], {}), ([], {"GF_INSECURE": "1"})], ids=["flag", "env"]
)
def test_insecure_serves_on_every_address_with_a_warning(
    packages_root: Path, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    server = ServerProcess.gf_serve(
        packages_root, tmp_path, "--host", "0.0.0.0", "--mode", "inline", *args, env=env
    ).start()
    try:
        port = server.address[1]
        r = requests.post(
            f"http://127.0.0.1:{port}/call/Base.slug", json={"text": "Hello World"}, timeout=10
        )
        assert r.json() == {"result": "hello-world"}
    finally:
        server.stop()
    assert "without a token (insecure)" in server.log()


def test_token_flow_on_every_address(packages_root: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)  # a file others can read refuses to start
    server = ServerProcess.gf_serve(
        packages_root,
        tmp_path,
        "--host",
        "0.0.0.0",
        "--mode",
        "inline",
        env={"GF_TOKEN_FILE": str(token_file)},
    ).start()
    try:
        url = f"http://127.0.0.1:{server.address[1]}"
        body = {"pack_func": "Base.slug", "kwargs": {"text": "Hello World"}}
        assert requests.post(f"{url}/gfgo/", json=body, timeout=10).status_code == 401
        r = requests.post(
            f"{url}/gfgo/", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert r.status_code == 200 and r.json() == "hello-world"
        with GFClient(url, token=TOKEN) as client:
            assert client.call("Base.slug", text="Hello World") == "hello-world"
        with GFClient(url, token=TOKEN + "x") as client, pytest.raises(Unauthorized):
            client.call("Base.slug", text="Hello World")
    finally:
        server.stop()
    assert TOKEN not in server.log()


# -- item 4: the token file, and what the server process gives away --------------------------
@pytest.mark.parametrize("case", ["missing", "empty", "newline only", "directory", "both"])
def test_a_bad_token_file_refuses_to_start(packages_root: Path, tmp_path: Path, case: str) -> None:
    token_file = tmp_path / "token"
    env = {"GF_TOKEN_FILE": str(token_file)}
    if case == "empty":
        token_file.write_text("")
    elif case == "newline only":
        token_file.write_text("\n")
    elif case == "directory":
        token_file.mkdir()
    elif case == "both":
        token_file.write_text(TOKEN)
        env["GF_TOKEN"] = TOKEN
    if token_file.is_file():
        token_file.chmod(0o600)  # the content is the fault, not the mode
    line = _one_line_error(ServerProcess.gf_serve(packages_root, tmp_path, *[], env=env).run())
    assert "GF_TOKEN_FILE" in line
    if case != "both":
        assert str(token_file) in line
    assert TOKEN not in line


def test_the_token_is_not_passed_on_to_what_the_server_starts(
    packages_root: Path, tmp_path: Path
) -> None:
    server = ServerProcess.gf_serve(
        packages_root, tmp_path, "--mode", "inline", env={"GF_TOKEN": TOKEN}
    ).start()
    try:
        r = requests.post(
            server.url + "call/Base.popen",
            json={"some_cmd": 'echo "[${GF_TOKEN}]"'},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 200 and r.json() == {"result": "[]\n"}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_registry(tmp_path_factory.mktemp("registry"))


@pytest.mark.parametrize("processes", [1, 2])
def test_the_server_process_is_not_dumpable(
    storage_url: str, tmp_path: Path, processes: int
) -> None:
    """Probe.dumpable runs inside the server process (inline) and asks the kernel."""
    server = ServerProcess.serve_call(
        tmp_path,
        storage_url=storage_url,
        branch="master",
        mode="inline",
        processes=processes,
        token=TOKEN,
    ).start()
    try:
        for _ in range(4):
            r = requests.post(
                server.url + "call/Probe.dumpable",
                json={},
                headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"},
                timeout=10,
            )
            assert r.json() == {"result": 0}
    finally:
        server.stop()


# -- issue 10 item 6: one /metrics for every process ------------------------------------------
def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def test_metrics_with_two_processes_count_the_calls_of_both(
    packages_root: Path, tmp_path: Path
) -> None:
    dirs_before = set(Path("/tmp").glob("gf-metrics-*"))
    server = ServerProcess.gf_serve(
        packages_root, tmp_path, "--mode", "inline", env={"GF_PROCESSES": "2"}
    ).start()
    try:
        assert "processes 2" in server.banner
        served_by: dict[int, int] = {}
        calls = 0
        while (len(served_by) < 2 or calls < 40) and calls < 400:
            r = requests.post(  # a new connection each time: either process may take it
                server.url + "call/Base.popen",
                json={"some_cmd": "echo $PPID"},
                headers={"Connection": "close"},
                timeout=10,
            )
            pid = int(r.json()["result"])
            served_by[pid] = served_by.get(pid, 0) + 1
            calls += 1
        assert len(served_by) == 2, served_by  # both server processes took calls
        assert set(served_by) <= set(server.children())
        for _ in range(6):  # whichever process answers the scrape sees every call
            text = requests.get(server.url + "metrics", headers={"Connection": "close"}).text
            assert _metric(text, "gf_calls_total", function="Base.popen", status="200") == calls
            assert _metric(text, "gf_call_duration_seconds_count", function="Base.popen") == calls
            assert "# TYPE gf_call_duration_seconds histogram" in text
            assert "gf_executor_workers" in text
        text = requests.get(server.url + "metrics").text
        assert _metric(text, "gf_http_requests_total", route="/metrics", status="200") == 6
        created = set(Path("/tmp").glob("gf-metrics-*")) - dirs_before
        assert len(created) == 1
    finally:
        server.stop()
    assert not any(d.exists() for d in created)  # the server cleaned its directory
