"""The ``storage`` fixture: one fresh store per test for every backend in ``BACKENDS``.

Each backend module adds a factory here; the contract tests run unchanged against all.
A factory takes pytest's ``request`` and ``tmp_path`` and returns an open ``Storage``.
The real-server backends use the session servers of ``tests/conftest.py`` (flushed
around each test); the ``fake*`` / ``mongomock`` ones run in-process. ``http`` is a live
``gf serve`` (``server.serve.serve`` in its own process, with a token) over the session
Redis, reached through the ``http://`` backend; flushing that Redis empties it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from globalfunc.storage import Storage, open_storage
from tests.servers import RedisServer

HTTP_TOKEN = "contract-token"  # a test server's token


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage(f"sqlite://{tmp_path / 'registry.db'}")


def _sqlite_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage("sqlite://:memory:")


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage(request.getfixturevalue("redis_url"))


def _mongo(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return open_storage(request.getfixturevalue("mongo_url"))


def _tiered(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    redis_url = request.getfixturevalue("redis_url")
    mongo_url = request.getfixturevalue("mongo_url")
    return open_storage(f"tiered+{redis_url}|{mongo_url}")


@pytest.fixture(scope="session")
def registry_server(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of a live GlobalFunc server whose registry is the session Redis."""
    from tests.integration.serve_support import ServerProcess

    tmp = tmp_path_factory.mktemp("registry-server")
    proc = ServerProcess.serve_call(
        tmp, root=str(tmp), storage_url=redis_server.url, token=HTTP_TOKEN, mode="inline"
    ).start()
    try:
        yield proc.url
    finally:
        proc.stop()


def _http(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    request.getfixturevalue("redis_url")  # flushed: an empty registry
    return open_storage(request.getfixturevalue("registry_server"), token=HTTP_TOKEN)


def _fake_redis_storage() -> Any:
    import fakeredis

    from globalfunc.storage.redis import RedisStorage

    return RedisStorage("redis://fake:6379/0", client=fakeredis.FakeRedis())


def _mongomock_storage() -> Any:
    import mongomock

    from globalfunc.storage.mongo import MongoStorage

    return MongoStorage("mongodb://mock/gf", client=mongomock.MongoClient(), database="gf")


def _fakeredis(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    store: Storage = _fake_redis_storage()
    return store


def _mongomock(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    store: Storage = _mongomock_storage()
    return store


def _tiered_fake(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    from globalfunc.storage.tiered import TieredStorage

    return TieredStorage(_fake_redis_storage(), _mongomock_storage())


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Any]] = {
    "sqlite": _sqlite,
    "sqlite-memory": _sqlite_memory,
    "redis": _redis,
    "mongo": _mongo,
    "tiered": _tiered,
    "fakeredis": _fakeredis,
    "mongomock": _mongomock,
    "tiered-fake": _tiered_fake,
    "http": _http,
}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store = BACKENDS[request.param](request, tmp_path)
    try:
        yield store
    finally:
        store.close()
