"""The test server helper's own contract, on real processes: readiness, stop bound, children.

Not here: what a GlobalFunc server answers (the HTTP, ase and pool tests use the helper).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.serve_support import SERVING, ServerProcess, make_repo

pytestmark = pytest.mark.integration

# Prints a banner like the server's once a child is running, started from a second thread
# (the way the pool starts workers), writes that child's pid to stderr, ignores SIGTERM.
STUBBORN = textwrap.dedent(
    """
    import signal, subprocess, sys, threading, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = []
    spawned = threading.Event()
    def spawn():  # the thread stays alive: a dead thread's children pass to the leader
        children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        spawned.set()
        time.sleep(3600)
    threading.Thread(target=spawn, daemon=True).start()
    spawned.wait()
    print("child", children[0].pid, file=sys.stderr, flush=True)
    print("not the banner yet", flush=True)
    time.sleep(0.2)
    print("GlobalFunc serving http://127.0.0.1:5999/ (root x, storage y, mode inline)", flush=True)
    while True:
        time.sleep(1)
    """
)


def _kill(pid: int) -> None:
    """End the grandchild the stub left behind (it outlives a SIGKILLed parent)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _stubborn(tmp_path: Path) -> ServerProcess:
    return ServerProcess(
        [sys.executable, "-c", STUBBORN],
        env={},
        log_path=tmp_path / "stubborn.log",
        ready=SERVING,
    )


def test_start_waits_for_the_banner_and_reads_url_address_and_memory(tmp_path: Path) -> None:
    server = _stubborn(tmp_path).start(wait=30)
    try:
        assert server.banner.startswith("GlobalFunc serving http://127.0.0.1:5999/ (root x")
        assert server.url == "http://127.0.0.1:5999/"
        assert server.base_url == "http://127.0.0.1:5999"
        assert server.address == ("127.0.0.1", 5999)
        assert server.rss_kib() > 1000  # a Python interpreter: several MiB
    finally:
        server.stop(signal.SIGKILL)


def test_children_are_found_under_every_task_not_only_the_main_one(tmp_path: Path) -> None:
    server = _stubborn(tmp_path).start(wait=30)
    try:
        child = int(server.log().split()[1])
        main_task = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert str(child) not in main_task  # the spawning thread, not the main one, owns it
        assert child in server.children()
    finally:
        server.stop(signal.SIGKILL)
    _kill(child)


def test_stop_falls_back_to_sigkill_after_its_bound(tmp_path: Path) -> None:
    server = _stubborn(tmp_path).start(wait=30)
    child = int(server.log().split()[1])
    began = time.monotonic()
    code = server.stop(signal.SIGTERM, wait=1.0)  # ignored: killed after 1 s
    took = time.monotonic() - began
    assert code == -signal.SIGKILL
    assert 1.0 <= took < 5.0, took
    assert server.stop() == -signal.SIGKILL  # a second stop is harmless
    _kill(child)


def test_a_server_that_exits_before_its_banner_fails_start_with_its_log(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "packages")
    server = ServerProcess.gf_serve(root, tmp_path, "--host", "0.0.0.0")  # no token: refused
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="server did not start") as info:
        server.start(wait=60)
    assert time.monotonic() - began < 30  # the exit ended the wait, not the 60 s bound
    assert "without a token" in str(info.value)
    assert server.proc is not None and server.proc.returncode == 1


def test_a_gf_worker_is_ready_at_its_own_line_not_the_serving_one(tmp_path: Path) -> None:
    server = ServerProcess.gf(make_repo(tmp_path / "packages"), "worker", "--ports", "0")
    assert server.ready.pattern.startswith("^GlobalFunc worker")
    assert "--port" not in server.argv  # only `serve` gets a default port
    assert server.env["GF_MODE"] == "inline" and server.env["TZ"] == "UTC"
