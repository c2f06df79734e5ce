"""The registry over HTTP (issue 15), with real processes: a notebook saves through gf serve.

A live ``gf serve`` with a token over its own SQLite registry; a second packages
repository with no storage settings saves through it with the seed's
``GFBase(project_path, redis_agent_host=URL, redis_connection_hash=TOKEN)``; ``POST /gfgo/``
on that server runs each new version at once; a third folder writes it back with
``_gen_a_file``, hash-checked. A wrong token is ``Unauthorized`` and saves nothing; with
``GF_WRITE_TOKEN`` the read token calls but cannot save. The server stopped (SIGSTOP) or
killed gives ``StorageUnavailable`` after the storage timeout, and a burst of saves
across a SIGKILL and restart loses none and duplicates none.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
import requests

from gfbase import GFBase
from globalfunc.errors import Forbidden, StorageUnavailable, Unauthorized
from globalfunc.storage import open_storage
from globalfunc.storage.http import HttpStorage
from tests.factories import make_record
from tests.integration.serve_support import ServerProcess, make_repo

pytestmark = [pytest.mark.integration]

TOKEN = "team-token-1"
READ, WRITE = "read-token-2", "write-token-3"
HELLO = 'def hello(name: str) -> str:\n    """Greet someone."""\n    return "{greeting} " + name\n'


def _repo(path: Path, files: dict[str, str]) -> Path:
    """A one-commit git packages repository holding ``files`` (relative path -> text)."""
    source = path.parent / f"{path.name}-src"
    for rel, text in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(text, encoding="utf-8")
    return make_repo(path, source)


def _server(tmp: Path, *args: str, **env: str) -> ServerProcess:
    root = tmp / "team"
    if not root.exists():
        _repo(root, {"Seed/ping.py": "def ping() -> str:\n    return 'pong'\n"})
    return ServerProcess.gf_serve(root, tmp, *args, env=env).start()


def _call(server: ServerProcess, token: str, func: str, **kwargs: object) -> requests.Response:
    return requests.post(
        server.url + "gfgo/",
        json={"pack_func": func, "kwargs": kwargs},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def team(tmp_path: Path) -> Iterator[ServerProcess]:
    server = _server(tmp_path, "--mode", "isolated", GF_TOKEN=TOKEN, GF_WORKERS="1")
    yield server
    server.stop()


def test_a_notebook_saves_through_the_server_and_it_is_callable_at_once(
    team: ServerProcess, tmp_path: Path
) -> None:
    notebook = _repo(tmp_path / "notebook", {"Team/hello.py": HELLO.format(greeting="hello")})
    gfb = GFBase(notebook, redis_agent_host=team.url, redis_connection_hash=TOKEN, tier1=None)
    first = gfb._save_a_file_rom("Team.hello.py")
    assert first.added and first.key == "sp_GlobalFunc.Team_master.hello"
    assert not (notebook / ".globalfunc" / "registry.db").exists()  # nothing local
    r = _call(team, TOKEN, "Team.hello", name="bob")
    assert r.status_code == 200 and r.json() == "hello bob", r.text

    # a new version runs on the next call, well inside the catalog's 5 s memory
    (notebook / "Team" / "hello.py").write_text(HELLO.format(greeting="hi"), encoding="utf-8")
    second = gfb._save_a_file_rom("Team.hello.py")
    assert second.added and second.sha256 != first.sha256
    r = _call(team, TOKEN, "Team.hello", name="bob")
    assert r.status_code == 200 and r.json() == "hi bob", r.text
    assert not gfb._save_a_file_rom("Team.hello.py").added  # the same version: a no-op
    history = gfb.registry.history("Team.hello")
    assert [h.sha256 for h in history] == [second.sha256, first.sha256]
    assert history[0].commit == git.Repo(notebook).head.commit.hexsha and history[0].dirty
    assert history[0].docstring == "Greet someone." and history[0].signature == "(name: str) -> str"

    # a third folder, with no repository at all, writes the latest version back
    third = tmp_path / "third"
    third.mkdir()
    reader = GFBase(third, redis_agent_host=team.url, redis_connection_hash=TOKEN)
    path = reader._gen_a_file(func_name="hello", target_folder=third / "out", pack_name="Team")
    assert path == third / "out" / "Team" / "hello.py"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == second.sha256
    assert path.read_text(encoding="utf-8") == HELLO.format(greeting="hi")

    # a wrong token: a clear Unauthorized, and nothing saved
    (notebook / "Team" / "hello.py").write_text(HELLO.format(greeting="yo"), encoding="utf-8")
    intruder = GFBase(notebook, redis_agent_host=team.url, redis_connection_hash="wrong")
    with pytest.raises(Unauthorized, match="wrong bearer token"):
        intruder._save_a_file_rom("Team.hello.py")
    assert [h.sha256 for h in gfb.registry.history("Team.hello")] == [
        second.sha256,
        first.sha256,
    ]
    assert _call(team, TOKEN, "Team.hello", name="bob").json() == "hi bob"
    assert "wrong" not in team.log() and TOKEN not in team.log()


def test_a_write_token_keeps_the_read_token_from_saving(tmp_path: Path) -> None:
    server = _server(tmp_path, GF_TOKEN=READ, GF_WRITE_TOKEN=WRITE)
    try:
        record = make_record("greet", code="def greet():\n    return 'hey'\n", package="Team")
        reader = open_storage(server.url, token=READ)
        with pytest.raises(Forbidden, match="GF_WRITE_TOKEN"):
            reader.put([record])
        assert reader.get(record.key) is None
        assert open_storage(server.url, token=WRITE).put([record]) == [True]
        assert _call(server, READ, "Team.greet").json() == "hey"  # read token: calls
        with pytest.raises(Forbidden):
            reader.delete(record.key)
        assert reader.get(record.key) is not None
    finally:
        server.stop()


def test_a_save_is_what_the_server_computes_and_bad_items_save_nothing(tmp_path: Path) -> None:
    server = _server(tmp_path, GF_TOKEN=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    code = 'def greet(x: int = 1) -> int:\n    """Add one."""\n    return x + 1\n'
    good = {
        "tier1": "sp_GlobalFunc",
        "package": "Team",
        "branch": "master",
        "name": "greet",
        "code": code,
        "sha256": hashlib.sha256(code.encode()).hexdigest(),
    }
    bad = [
        ({**good, "sha256": "0" * 64}, 400, "hashes to"),
        ({**good, "package": "__import__"}, 400, "private"),
        ({**good, "branch": "a..b"}, 400, "branch"),
        ({**good, "docstring": "lies"}, 400, "unknown fields"),
        (
            {
                **good,
                "code": "def greet(:\n",
                "sha256": hashlib.sha256(b"def greet(:\n").hexdigest(),
            },
            422,
            "syntax error",
        ),
    ]
    try:
        for item, status, words in bad:
            r = requests.post(
                server.url + "registry/save",
                json={"records": [good, item]},
                headers=auth,
                timeout=10,
            )
            assert r.status_code == status and words in r.json()["message"], r.text
        store = open_storage(server.url, token=TOKEN)
        assert store.get("sp_GlobalFunc.Team_master.greet") is None  # all or nothing
        r = requests.post(
            server.url + "registry/save", json={"records": [good]}, headers=auth, timeout=10
        )
        assert r.status_code == 200 and r.json()["results"][0]["added"] is True, r.text
        saved = store.get("sp_GlobalFunc.Team_master.greet")
        assert (
            saved is not None
            and saved.docstring == "Add one."
            and saved.signature == "(x: int = 1) -> int"
        )
        assert _call(server, TOKEN, "Team.greet", x=41).json() == 42
    finally:
        server.stop()


def test_a_server_without_a_token_takes_no_saves(tmp_path: Path) -> None:
    server = _server(tmp_path)
    try:
        store = open_storage(server.url)
        with pytest.raises(Forbidden, match="accepts no saves"):
            store.put([make_record("greet", package="Team")])
        assert store.list("sp_GlobalFunc", package="Team") == []
    finally:
        server.stop()


def test_a_stopped_or_killed_server_is_storage_unavailable_after_the_timeout(
    tmp_path: Path,
) -> None:
    server = _server(tmp_path, GF_TOKEN=TOKEN)
    store = HttpStorage(server.url, token=TOKEN, timeout=1.0)
    record = make_record("greet", code="def greet():\n    return 1\n", package="Team")
    try:
        os.kill(server.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="did not answer"):
            store.put([record])
        took = time.monotonic() - started
        assert 0.9 <= took < 2.5, took
        os.kill(server.pid, signal.SIGCONT)
        # the request the stopped server had read may land now: saving again is a no-op
        # then, a first save otherwise; either way exactly one version
        store.put([record])
        assert [h.sha256 for h in store.history(record.key)] == [record.sha256]
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop(signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.put([make_record("greet", code="def greet():\n    return 2\n", package="Team")])
    assert 0.9 <= time.monotonic() - started < 2.5


def test_a_burst_of_saves_across_a_kill_and_restart_loses_none_and_duplicates_none(
    tmp_path: Path,
) -> None:
    server = _server(tmp_path, GF_TOKEN=TOKEN)
    _, port = server.address
    store = HttpStorage(server.url, token=TOKEN, timeout=1.0)
    names, versions = [f"f{i}" for i in range(4)], 30
    plan = [
        make_record(name, code=f"def {name}():\n    return {v}\n", package="Burst")
        for v in range(versions)
        for name in names
    ]
    done: list[int] = []
    unavailable: list[int] = []
    failures: list[BaseException] = []

    def burst() -> None:
        deadline = time.monotonic() + 120
        try:
            for i, record in enumerate(plan):
                while True:
                    try:
                        store.put([record])
                        break
                    except StorageUnavailable:
                        unavailable.append(i)
                        assert time.monotonic() < deadline, "the server never came back"
                done.append(i)
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=burst)
    thread.start()
    restarted = None
    try:
        while len(done) < len(plan) // 3 and thread.is_alive():
            time.sleep(0.01)
        server.stop(signal.SIGKILL)
        at_kill = len(done)
        time.sleep(1.5)  # longer than the timeout: the save in flight fails, then is retried
        restarted = ServerProcess.gf_serve(
            tmp_path / "team", tmp_path, "--port", str(port), env={"GF_TOKEN": TOKEN}
        ).start()
        thread.join(timeout=150)
        assert not thread.is_alive() and not failures, failures
        assert 0 < at_kill < len(plan) and unavailable, (at_kill, unavailable)
        for name in names:
            key = f"sp_GlobalFunc.Burst_master.{name}"
            expected = [r.sha256 for r in reversed(plan) if r.name == name]
            assert [h.sha256 for h in store.history(key)] == expected, name
    finally:
        if restarted is not None:
            restarted.stop()
        server.stop(signal.SIGKILL)
