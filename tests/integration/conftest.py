"""Fixtures for integration tests: real git repositories in temporary folders."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import git
import pytest


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
