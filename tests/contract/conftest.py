"""The ``storage`` fixture: one fresh store per test for every backend in ``BACKENDS``.

Each backend module adds a factory here; the contract tests run unchanged against all.
A factory takes pytest's ``request`` and ``tmp_path`` and returns an open ``Storage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from globalfunc.storage import Storage, open_storage


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage(f"sqlite://{tmp_path / 'registry.db'}")


def _sqlite_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage("sqlite://:memory:")


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Any]] = {
    "sqlite": _sqlite,
    "sqlite-memory": _sqlite_memory,
}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store = BACKENDS[request.param](request, tmp_path)
    try:
        yield store
    finally:
        store.close()
