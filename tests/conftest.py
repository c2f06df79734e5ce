"""Shared pytest configuration: repo paths, and the real Redis / MongoDB-wire servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import MongoServer, RedisServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def base_packages() -> Path:
    """The repo's own ``packages/`` folder (holds ``Base``)."""
    return REPO / "packages"


@pytest.fixture(autouse=True)
def isolated_function_imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Undo the function packages a test imported (``Base`` from a temp repo, ...) and sys.path.

    Function packages are imported by top-level name, so a ``Base`` imported from one
    test's folder would otherwise shadow the next test's ``Base``. Library modules stay.
    """
    path_before = list(sys.path)
    modules_before = dict(sys.modules)
    yield
    sys.path[:] = path_before
    roots = (
        str(tmp_path_factory.getbasetemp()),
        str(REPO / "packages"),
        str(REPO / "tests" / "data"),
    )
    for name, module in list(sys.modules.items()):
        if modules_before.get(name) is module:
            continue
        if (getattr(module, "__file__", None) or "").startswith(roots):
            if name in modules_before:
                sys.modules[name] = modules_before[name]
            else:
                del sys.modules[name]


# -- real servers (tests/servers.py): started once per session, flushed around each test --
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A real nx-27017 MongoDB-wire server on a free loopback port for the whole session."""
    server = MongoServer(tmp_path_factory.mktemp("mongo"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session Redis, empty at the start and the end of the test."""
    if not redis_server.running():
        redis_server.start()  # a fault test may have killed it
    redis_server.flush()
    yield redis_server.url
    if redis_server.running():
        redis_server.flush()


@pytest.fixture
def mongo_url(mongo_server: MongoServer) -> Iterator[str]:
    """The session MongoDB-wire server, empty at the start and the end of the test."""
    if not mongo_server.running():
        mongo_server.start()
    mongo_server.flush()
    yield mongo_server.url
    if mongo_server.running():
        mongo_server.flush()
