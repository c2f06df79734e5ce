"""GFClient's retry rule against real servers killed with SIGKILL between calls.

A pooled keep-alive connection to a server that died, and a connection that is refused,
never reached a server: the next call goes on a fresh connection (to the restarted
server) or to the next worker, and never fails as "may have run".
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from globalfunc.client import GFClient
from globalfunc.errors import ServerUnavailable
from tests.integration.serve_support import ServerProcess, clean_env, make_repo
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("faults") / "packages")


def test_a_server_killed_and_restarted_on_its_port_takes_the_next_call(root: Path) -> None:
    port = str(free_port())
    first = ServerProcess.gf(root, "serve", "--port", port).start()
    second: ServerProcess | None = None
    try:
        with GFClient(first.url, retries=1, backoff=0.05) as client:
            assert client.call("Raising.whoami") == first.proc.pid  # a pooled connection now
            first.stop(signal.SIGKILL)
            with pytest.raises(ServerUnavailable) as down:
                client.call("Raising.whoami")
            assert "was not sent" in str(down.value) and "may have run" not in str(down.value)
            second = ServerProcess.gf(root, "serve", "--port", port).start()
            assert client.call("Raising.whoami") == second.proc.pid
            assert client.call("Raising.whoami") == second.proc.pid  # keep-alive again
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_a_worker_killed_between_calls_hands_the_next_call_to_another(
    root: Path, tmp_path: Path, redis_url: str
) -> None:
    env = clean_env(GF_WORKER_REDIS_URL=redis_url, GF_WORKER_HEARTBEAT="5")
    first_port = free_port()
    ports = f"{first_port}-{first_port + 20}"
    other_root = make_repo(tmp_path / "other")
    doomed = ServerProcess.gf(root, "worker", "--ports", ports, "--host-label", "doomed", env=env)
    other = ServerProcess.gf(
        other_root, "worker", "--ports", ports, "--host-label", "other", env=env
    )
    try:
        doomed.start()
        other.start()
        with GFClient.from_workers(redis_url, prefer="doomed_*", backoff=0.05) as client:
            names = [w.name for w in client.workers()]
            assert len(names) == 2, names
            for _ in range(3):  # keep-alive connections to the preferred worker
                assert client.call("Raising.whoami") == doomed.proc.pid
            doomed.stop(signal.SIGKILL)  # its entry stays registered for 15 s
            assert "doomed" in " ".join(w.name for w in client.workers())
            assert client.call("Raising.whoami") == other.proc.pid
            assert client.call("Raising.whoami") == other.proc.pid
    finally:
        doomed.stop(signal.SIGKILL)
        other.stop()
