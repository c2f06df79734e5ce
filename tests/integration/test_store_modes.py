"""The embedded store is its owner's alone (review "attack1" finding 12), with real processes.

``gf save --all`` creates ``<root>/.globalfunc`` (0700), its SQLite registry with the
``-wal``/``-shm`` files SQLite makes beside it, and the scan cache (all 0600). As root, a
process of user ``nobody`` (what isolated workers run as) can open none of them, even
when the folder is opened up (``chmod 755``, as an older version left it). An existing
file keeps its mode.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from globalfunc.storage.sqlite import SqliteStorage
from tests.integration.serve_support import REPO, clean_env, make_repo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("runuser") is None,
        reason="opening files as another user needs root and runuser",
    ),
]

FUNCS = REPO / "tests" / "data" / "funcs"

# Run as nobody: try each path with open() and SQLite (read-only); print one line per path.
_PROBE = """
import sqlite3, sys
for path in sys.argv[1:]:
    try:
        open(path, "rb").close()
        how = "open"
    except OSError as exc:
        how = "denied " + type(exc).__name__
    if path.endswith(".db"):
        try:
            db = sqlite3.connect("file:" + path + "?mode=ro", uri=True)
            db.execute("SELECT name FROM sqlite_master").fetchall()
            how += " sqlite-read"
        except sqlite3.Error as exc:
            how += " sqlite-denied"
    print(path, how)
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp folders are root's alone, 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="gf-modes-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _as_nobody(*paths: Path) -> dict[str, str]:
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c", _PROBE, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_gf_save_keeps_the_registry_and_scan_cache_from_other_users(shared_tmp: Path) -> None:
    root = make_repo(shared_tmp / "pk", FUNCS)
    shutil.rmtree(root / ".globalfunc", ignore_errors=True)  # copied if a test served FUNCS
    root.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", "--root", str(root), "save", "--all"],
        env=clean_env(),
        capture_output=True,
        timeout=120,
        cwd=str(REPO),
    )
    assert result.returncode == 0, result.stderr.decode()
    store = root / ".globalfunc"
    db, cache = store / "registry.db", store / "scan-cache.json"
    assert db.is_file() and cache.is_file()
    # keep the WAL files in place while nobody looks (a last close would remove them)
    keeper = sqlite3.connect(db)
    keeper.execute("PRAGMA journal_mode=WAL")
    keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()
    try:
        wal = [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        assert wal, "SQLite made no -wal/-shm file: their mode was not checked"
        assert _mode(store) == 0o700, oct(_mode(store))
        modes = {p.name: oct(_mode(p)) for p in (db, cache, *wal)}
        assert set(modes.values()) == {"0o600"}, modes

        seen = _as_nobody(db, cache, *wal)
        assert all(how.startswith("denied") for how in seen.values()), seen
        store.chmod(0o755)  # as if an older version had made the folder
        control = store / "control.txt"  # proves nobody can open what is not private
        control.write_text("x")
        control.chmod(0o644)
        seen = _as_nobody(db, cache, *wal, control)
        assert seen.pop(str(control)) == "open", seen
        assert all(how.startswith("denied") for how in seen.values()), seen
        assert "sqlite-read" not in seen[str(db)]
    finally:
        keeper.close()


def test_an_existing_database_keeps_its_mode(shared_tmp: Path) -> None:
    path = shared_tmp / "shared.db"
    SqliteStorage(path).close()
    assert _mode(path) == 0o600
    path.chmod(0o640)  # the owner chose to share it with a group
    SqliteStorage(path).close()
    assert _mode(path) == 0o640
    nested = shared_tmp / "a" / "b" / "registry.db"
    SqliteStorage(nested).close()
    assert _mode(nested) == 0o600 and _mode(nested.parent) == 0o700
