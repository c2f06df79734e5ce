"""Out of file descriptors (review "attack1" finding 6), with a real ``gf serve`` process.

The server runs under ``prlimit --nofile=N:N`` (soft and hard, so it cannot raise its way
out) and gets far more idle connections than it can hold: it must neither spin on
``accept`` (CPU stays low) nor flood its log, and it answers ``/healthz`` again once the
connections close. With only the soft limit low, the server raises it to the hard one.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.integration.serve_support import REPO, ServerProcess, make_repo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)"),
]

FUNCS = REPO / "tests" / "data" / "funcs"
TICKS = os.sysconf("SC_CLK_TCK")


def _server(tmp: Path, soft: int, hard: int) -> ServerProcess:
    root = make_repo(tmp / "pk", FUNCS)
    shutil.rmtree(root / ".globalfunc", ignore_errors=True)
    server = ServerProcess.gf_serve(root, tmp, "--mode", "inline")
    server.argv = ["prlimit", f"--nofile={soft}:{hard}", "--", *server.argv]
    return server.start()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of the whole process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


def test_out_of_descriptors_the_server_neither_spins_nor_floods_its_log(tmp_path: Path) -> None:
    server = _server(tmp_path, 96, 96)
    conns: list[socket.socket] = []
    try:
        assert _open_files_limit(server.pid) == (96, 96)
        host, port = server.address
        for _ in range(400):  # idle: connect and send nothing
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((host, port))
            conns.append(sock)
        time.sleep(1.0)  # the server takes what it can and meets EMFILE
        cpu, log_size, began = _cpu_seconds(server.pid), len(server.log()), time.monotonic()
        time.sleep(4.0)
        share = (_cpu_seconds(server.pid) - cpu) / (time.monotonic() - began)
        grown = len(server.log()) - log_size
        assert server.proc is not None and server.proc.poll() is None, server.log()[-2000:]
        assert share < 0.15, f"the server used {share:.0%} of a CPU while out of descriptors"
        assert grown < 4000, f"the log grew {grown} bytes in 4 s:\n{server.log()[-1500:]}"
        assert "Too many open files" in server.log()  # it did run out, and said so
        for sock in conns:
            sock.close()
        conns.clear()
        deadline = time.monotonic() + 15
        while True:
            try:
                r = requests.get(server.url + "healthz", timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "/healthz did not answer after the close"
                time.sleep(0.2)
        assert r.status_code == 200, r.text
    finally:
        for sock in conns:
            sock.close()
        server.stop()
    log = server.log()
    assert log.count("Traceback") == 0, log[-3000:]
    assert len(log) < 20000, f"{len(log)} bytes of log:\n{log[-1500:]}"


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    server = _server(tmp_path, 64, 4096)
    try:
        assert _open_files_limit(server.pid) == (4096, 4096)
        r = requests.get(server.url + "healthz", timeout=10)
        assert r.status_code == 200
    finally:
        server.stop()
