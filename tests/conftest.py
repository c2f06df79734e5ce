"""Shared pytest configuration: the repo root on sys.path, the packages folder location."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def base_packages() -> Path:
    """The repo's own ``packages/`` folder (holds ``Base``)."""
    return REPO / "packages"
