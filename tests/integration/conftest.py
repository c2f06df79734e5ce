"""Fixtures for integration tests: real git repositories in temporary folders, a
redis-server of a test's own, a file isolated functions can log their runs to."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from tests.servers import RedisServer


def _identity(repo: git.Repo) -> None:
    with repo.config_writer() as cfg:
        cfg.set_value("user", "email", "tests@globalfunc.local")
        cfg.set_value("user", "name", "GlobalFunc Tests")


@pytest.fixture
def packages_repo(tmp_path: Path, base_packages: Path) -> Iterator[Path]:
    """A git repo holding a copy of ``packages/Base``, one commit on ``master``, and a bare remote."""
    root = tmp_path / "GlobalFunc"
    shutil.copytree(
        base_packages / "Base", root / "Base", ignore=shutil.ignore_patterns("__pycache__")
    )
    repo = git.Repo.init(root, initial_branch="master")
    _identity(repo)
    (root / ".gitignore").write_text(".globalfunc/\n__pycache__/\n")
    repo.git.add(A=True)
    repo.index.commit("initial")
    git.Repo.init(tmp_path / "remote.git", bare=True)
    repo.create_remote("origin", str(tmp_path / "remote.git"))
    repo.git.push("origin", "master:master")
    yield root


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this test alone (fault tests stop, kill or fill it)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def run_log() -> Iterator[Path]:
    """A file the functions' processes (another uid in isolated mode) can append to."""
    folder = Path(tempfile.mkdtemp(prefix="gf-runs-"))
    folder.chmod(0o777)
    path = folder / "runs.log"
    path.touch()
    path.chmod(0o666)
    try:
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
