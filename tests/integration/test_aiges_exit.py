"""The plugin exits within 2 s of its parent's death or of ``GRPCController.Shutdown``,
whatever its user code is doing: nothing, a call that sleeps forever (holding the lock
``wrapperFini`` needs), a call that spins forever, or a ``wrapperCreate`` that never
returns (a gRPC handler waiting on it). Real processes on both servers; the time from
the kill (or the Shutdown call) to the plugin process being gone is measured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from server.aiges.client import Handshake, LoaderClient, wait_until
from tests.integration.aiges_support import DATA, REPO, SERVERS, command, env, require_server

pytestmark = pytest.mark.integration

EXIT_BOUND_SECONDS = 2.0
LOADS = ("idle", "once_hang", "once_busy", "create_hang")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _load(client: LoaderClient, load: str, marker: Path) -> None:
    """Put the plugin in the state ``load`` names and wait until the user code runs."""
    assert client.init() == 0
    client.open_communicate()
    if load == "idle":
        assert client.once({}, [client.text("text", "x")], timeout=10).ret == 0
        return
    params = {"do": load.split("_")[1], "marker": str(marker)}
    if load.startswith("once"):
        client.send_once(client.request(params, [client.text("text", "x")]))
    else:  # a create that never returns holds a gRPC handler thread
        threading.Thread(target=_ignore_errors(lambda: client.create(params)), daemon=True).start()
    assert wait_until(marker.exists, 10), f"the {load} call never started"


def _ignore_errors(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(Exception):  # the plugin went away under the call
            fn()

    return run


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("server", SERVERS)
def test_exits_within_2s_of_shutdown(server: str, load: str, tmp_path: Path) -> None:
    require_server(server)
    client = LoaderClient.start(
        command(server, "--wrapper", str(DATA / "stuck"), "--workers", "2"), env=env(), cwd=REPO
    )
    with client:
        _load(client, load, tmp_path / "running")
        began = time.monotonic()
        code = client.shutdown(timeout=5)
        took = time.monotonic() - began
        print(f"exit after Shutdown: {server}/{load}: {took:.2f}s")
        assert code == 0, f"exit code {code}; stderr:\n{client.stderr_text()[-3000:]}"
        assert took < EXIT_BOUND_SECONDS, f"{server}/{load}: exited {took:.2f}s after Shutdown"


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("server", SERVERS)
def test_exits_within_2s_of_its_parents_death(server: str, load: str, tmp_path: Path) -> None:
    require_server(server)
    pid_file = tmp_path / "plugin.pid"
    plugin = command(server, "--wrapper", str(DATA / "stuck"), "--workers", "2")
    parent_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen(['bash', '-c', {plugin!r}])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], env=env(), cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the plugin inherited the parent's stdout
        assert wait_until(pid_file.exists, 10)
        plugin_pid = int(pid_file.read_text())
        client = LoaderClient(None, Handshake.parse(line.decode()))
        try:
            _load(client, load, tmp_path / "running")
            os.kill(parent.pid, signal.SIGKILL)
            began = time.monotonic()
            parent.wait(5)
            gone = wait_until(lambda: not _alive(plugin_pid), EXIT_BOUND_SECONDS + 3, 0.02)
            took = time.monotonic() - began
        finally:
            client.close()
        print(f"exit after parent death: {server}/{load}: {took:.2f}s")
        assert gone, f"{server}/{load}: the plugin outlived its parent by 5 s"
        assert took < EXIT_BOUND_SECONDS, f"{server}/{load}: exited {took:.2f}s after its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
