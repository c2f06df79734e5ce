"""A reviewer's findings on the registry over HTTP and search (issues 14, 15), with real
``gf serve`` processes: bounded search queries ranked off the event loop, the console's
describe as a write, the duplicate check of a save without a listing of the space, big
saves within the default timeout without blocking the server, and the storage timeout's
message naming both settings.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gfbase import GFBase
from globalfunc.errors import InvalidRequest, StorageUnavailable
from globalfunc.fingerprint import DuplicateCheckFailed, DuplicateFunction
from globalfunc.search import MAX_QUERY_CHARS, MAX_QUERY_TERMS
from globalfunc.storage import open_storage
from globalfunc.storage.http import HttpStorage
from tests.factories import make_record
from tests.integration.serve_support import REPO, ServerProcess, clean_env, make_repo

pytestmark = [pytest.mark.integration]

TOKEN, READ, WRITE = "team-token-1", "read-token-2", "write-token-3"
WORDS = [
    "pickle",
    "frame",
    "parse",
    "load",
    "save",
    "merge",
    "split",
    "join",
    "table",
    "column",
    "index",
    "matrix",
    "vector",
    "graph",
    "node",
    "edge",
    "path",
    "file",
    "disk",
    "cache",
    "queue",
    "lock",
    "thread",
    "socket",
    "stream",
    "buffer",
]


def _repo(path: Path, files: dict[str, str]) -> Path:
    source = path.parent / f"{path.name}-src"
    for rel, text in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(text, encoding="utf-8")
    return make_repo(path, source)


def _server(tmp: Path, *args: str, records: int = 0, **env: str) -> ServerProcess:
    """A gf serve over its own SQLite file, pre-filled with ``records`` functions."""
    root = tmp / "team"
    if not root.exists():
        _repo(root, {"Seed/ping.py": "def ping() -> str:\n    return 'pong'\n"})
    db = tmp / "team-registry.db"
    if records:
        rng = random.Random(7)
        store = open_storage(f"sqlite:///{db}")
        batch = []
        for i in range(records):
            text = " ".join(rng.choice(WORDS) for _ in range(300))
            code = f'def f{i}(x=None):\n    """{text}"""\n    return x + {i}\n'
            batch.append(make_record(f"f{i}", code, package="Bulk"))
        store.put(batch)
        store.close()
    env = {"GF_STORAGE_URL": f"sqlite:///{db}", **env}
    return ServerProcess.gf_serve(root, tmp, *args, env=env).start()


def _health_latencies(url: str, stop: threading.Event, out: list[float]) -> None:
    """Time ``GET /healthz`` over and over until ``stop``."""
    with requests.Session() as session:
        while not stop.is_set():
            start = time.monotonic()
            session.get(url + "healthz", timeout=60).raise_for_status()
            out.append(time.monotonic() - start)
            time.sleep(0.02)


@pytest.fixture
def big(tmp_path: Path) -> Iterator[ServerProcess]:
    server = _server(tmp_path, records=6000, GF_TOKEN=TOKEN)
    yield server
    server.stop()


# -- 1. search queries are bounded, and ranked off the event loop --------------------------
def test_a_query_past_the_limit_is_a_400_on_every_search_surface(
    big: ServerProcess, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    long_q = "pickle " * 5000  # 35 KB: the reviewer's 32 KB query
    many = " ".join(f"w{i}x" for i in range(MAX_QUERY_TERMS + 1))  # short, too many words
    for path in ("search", "registry/search"):
        r = requests.get(big.url + path, params={"q": long_q}, headers=auth, timeout=30)
        assert r.status_code == 400, (path, r.text[:200])
        body = r.json()
        assert body["error"] == "InvalidRequest" and "at most" in body["message"]
        assert "\n" not in body["message"]
        # more words than are searched for: within the document's maxLength, so answered
        # (the words past MAX_QUERY_TERMS are not searched for)
        r = requests.get(big.url + path, params={"q": many}, headers=auth, timeout=30)
        assert r.status_code == 200, (path, r.text[:200])
    # the library (gf search, GFBase.search) says the same before anything is sent
    gfb = GFBase(
        _repo(tmp_path / "nb", {"Team/k.py": "def k():\n    return 1\n"}),
        storage=HttpStorage(big.url, token=TOKEN),
    )
    with pytest.raises(InvalidRequest, match="at most"):
        gfb.search(long_q)
    cli = subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", "--storage", big.url, "search", long_q],
        env=clean_env(GF_TOKEN=TOKEN),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode != 0 and "at most" in cli.stderr, cli.stderr[-500:]


def test_a_maximal_query_on_thousands_of_records_does_not_block_healthz(
    big: ServerProcess,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # the allowed maximum: as many terms as allowed, the ones every record holds, and the
    # last one padded to the character limit
    q = " ".join(WORDS[: MAX_QUERY_TERMS - 1]) + " pa"
    q += "a" * (MAX_QUERY_CHARS - len(q))
    assert len(q) == MAX_QUERY_CHARS
    stop, latencies = threading.Event(), []  # type: ignore[var-annotated]
    errors: list[BaseException] = []

    def search() -> None:
        try:
            for path in ("search", "registry/search", "search", "registry/search"):
                r = requests.get(big.url + path, params={"q": q}, headers=auth, timeout=120)
                assert r.status_code == 200, r.text[:200]
        except BaseException as exc:
            errors.append(exc)

    pinger = threading.Thread(target=_health_latencies, args=(big.url, stop, latencies))
    pinger.start()
    time.sleep(0.2)
    started = time.monotonic()
    searcher = threading.Thread(target=search)
    searcher.start()
    searcher.join()
    took = time.monotonic() - started
    stop.set()
    pinger.join()
    assert not errors, errors
    worst = max(latencies)
    print(f"4 maximal searches over 6000 records: {took:.2f}s; worst /healthz {worst:.3f}s")
    each = took / 4
    assert each > 0.45, f"a search took {each:.2f}s: too quick to show anything"
    # on the event loop, a ping waits for the search it lands behind (half of one on average)
    assert worst < each / 3, f"/healthz took {worst:.2f}s while searching ({each:.2f}s each)"


# -- 2. the console's describe is a write ---------------------------------------------------
def _describe(server: ServerProcess, token: str | None, kind: str) -> requests.Response:
    headers = {"Content-Type": kind}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(
        server.url + "ui/api/describe/Seed.ping",
        data=b'{"description": "landed"}',
        headers=headers,
        timeout=30,
    )


def _description(server: ServerProcess, token: str | None) -> str | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.get(server.url + "ui/api/functions/Seed.ping", headers=headers, timeout=30)
    r.raise_for_status()
    return r.json()["description"]


def test_describe_needs_the_write_token_and_a_json_body(tmp_path: Path) -> None:
    open_server = _server(tmp_path / "a")
    try:  # no token at all: /registry/save refuses every write, so does describe
        for kind in ("application/json", "text/plain"):
            r = _describe(open_server, None, kind)
            assert r.status_code == 403, r.text
        assert not _description(open_server, None)
    finally:
        open_server.stop()
    server = _server(tmp_path / "b", GF_TOKEN=READ, GF_WRITE_TOKEN=WRITE)
    try:
        r = _describe(server, READ, "application/json")
        assert r.status_code == 403 and "GF_WRITE_TOKEN" in r.json()["message"]
        r = _describe(server, WRITE, "text/plain")  # what a cross-site no-cors fetch sends
        assert r.status_code == 400 and "application/json" in r.json()["message"]
        assert not _description(server, READ)
        r = _describe(server, WRITE, "application/json; charset=utf-8")
        assert r.status_code == 200, r.text
        assert _description(server, READ) == "landed"
    finally:
        server.stop()


# -- 3. the duplicate check of a save lists nothing ------------------------------------------
class _Counting(HttpStorage):
    """An http storage that counts the requests it sends and the bytes it receives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paths: list[str] = []
        self.received = 0

    def _answer(self, response: Any, method: str, path: str) -> dict[str, Any]:
        self.paths.append(path)
        self.received += len(response.data)
        return super()._answer(response, method, path)


def test_a_save_checks_duplicates_without_listing_the_space(
    big: ServerProcess, tmp_path: Path
) -> None:
    same = 'def g(x=None):\n    """copy"""\n    return x + 17\n'  # the logic of Bulk.f17
    other = "def h(x=None):\n    return x * 17\n"
    notebook = _repo(tmp_path / "nb", {"Team/g.py": same, "Team/h.py": other})
    store = _Counting(big.url, token=TOKEN)
    gfb = GFBase(notebook, storage=store)
    with pytest.warns(DuplicateFunction, match="Bulk_master.f17"):
        result = gfb._save_a_file_rom("Team.g.py")
    assert result.added and result.duplicates == ("sp_GlobalFunc.Bulk_master.f17",)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateFunction)
        assert gfb._save_a_file_rom("Team.h.py").duplicates == ()
    print(f"two saves: {store.paths}, {store.received} bytes received")
    assert "/registry/list" not in store.paths
    assert store.received < 20_000  # the space is ~6000 records, megabytes as a listing


def test_a_failed_duplicate_check_is_a_warning_and_the_save_stands(
    big: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = _repo(tmp_path / "nb", {"Team/k.py": "def k(x=None):\n    return x - 3\n"})
    store = HttpStorage(big.url, token=TOKEN)

    def down(*_: Any) -> None:  # as the reviewer's ReadTimeout, after the save landed
        raise StorageUnavailable("registry did not answer POST /registry/duplicates")

    monkeypatch.setattr(store, "same_logic", down)
    gfb = GFBase(notebook, storage=store)
    with pytest.warns(DuplicateCheckFailed, match="did not answer"):
        result = gfb._save_a_file_rom("Team.k.py")
    assert result.added
    assert HttpStorage(big.url, token=TOKEN).get(result.key) is not None


# -- 4. a big save within the default timeout, the server answering meanwhile ---------------
def test_a_save_all_of_1000_functions_with_the_default_timeout(tmp_path: Path) -> None:
    server = _server(tmp_path, GF_TOKEN=TOKEN)
    try:
        rng = random.Random(3)
        files = {}
        for i in range(1000):
            doc = " ".join(rng.choice(WORDS) for _ in range(500))  # ~3.7 KB a file
            files[f"Big/b{i}.py"] = f'def b{i}(x=None):\n    """{doc}"""\n    return x\n'
        notebook = _repo(tmp_path / "nb", files)
        stop, latencies = threading.Event(), []  # type: ignore[var-annotated]
        pinger = threading.Thread(target=_health_latencies, args=(server.url, stop, latencies))
        pinger.start()
        started = time.monotonic()
        try:
            run = subprocess.run(
                [
                    *(sys.executable, "-m", "globalfunc.cli", "--root", str(notebook)),
                    *("--storage", server.url, "save", "--all"),
                ],
                env=clean_env(GF_TOKEN=TOKEN),
                cwd=str(REPO),
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            stop.set()
            pinger.join()
        took = time.monotonic() - started
        assert run.returncode == 0, run.stderr[-2000:]
        worst = max(latencies)
        print(f"save --all of 1000 x ~3.7 KB: {took:.1f}s; worst /healthz {worst:.3f}s")
        assert worst < 0.5, f"/healthz took {worst:.2f}s during the save"
        stored = HttpStorage(server.url, token=TOKEN, timeout=30).list("sp_GlobalFunc", "Big")
        assert len(stored) == 1000
    finally:
        server.stop()


# -- 5. the timeout's message names both settings --------------------------------------------
def test_the_storage_timeout_message_names_gf_storage_timeout_and_storage_timeout(
    tmp_path: Path,
) -> None:
    notebook = _repo(tmp_path / "nb", {"Team/k.py": "def k():\n    return 1\n"})
    gfb = GFBase(notebook, redis_agent_host="http://127.0.0.1:9/", storage_timeout=0.3)
    with pytest.raises(StorageUnavailable) as err:
        gfb._save_a_file_rom("Team.k.py")
    assert "GF_STORAGE_TIMEOUT" in err.value.message
    assert "storage_timeout=" in err.value.message
