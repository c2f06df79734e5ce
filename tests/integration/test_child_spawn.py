"""Starting children as another user from a process that is busy with gRPC (real processes).

The HTTP server hosts AIGES wrapper processes through gRPC and starts more children while
those channels are busy. Popen's own user switch makes the spawn a full ``fork()``, which
runs gRPC's fork handlers; they restarted gRPC's pollers inside the child, which then died
of SIGABRT or SIGSEGV before its exec (7 of 2,000 spawns; CI lost a whole test module to one).
Children now switch user after the exec (``setpriv``), so the spawn stays a ``vfork``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from globalfunc.executor import child as child_module
from globalfunc.executor.child import Child, ChildSpec

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="children switch user only as root")
needs_setpriv = pytest.mark.skipif(child_module._SETPRIV is None, reason="no setpriv")


@pytest.fixture
def busy_grpc() -> Iterator[None]:
    """A gRPC server in this process with three threads calling it without pause."""
    server = grpc.server(futures.ThreadPoolExecutor(4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()

    def hammer() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                stub.Check(health_pb2.HealthCheckRequest(), timeout=10)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        server.stop(None)


@as_root
@needs_setpriv
def test_children_started_as_another_user_survive_a_busy_grpc_parent(busy_grpc: None) -> None:
    codes: Counter[int | None] = Counter()
    lock = threading.Lock()

    def spawn(count: int) -> None:
        for _ in range(count):
            spec = ChildSpec(
                argv=["/bin/true"],
                user="nobody",
                memory_mb=400,
                stdin_pipe=False,
                stdout_pipe=False,
            )
            code = Child.spawn(spec).reap(10.0)
            with lock:
                codes[code] += 1

    spawners = [threading.Thread(target=spawn, args=(400,)) for _ in range(2)]
    for thread in spawners:
        thread.start()
    for thread in spawners:
        thread.join()
    assert codes == {0: 800}


@as_root
@needs_setpriv
def test_the_child_runs_as_the_user_without_groups_and_under_its_cap() -> None:
    probe = (
        "import os, resource; "
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups(), "
        "resource.getrlimit(resource.RLIMIT_AS)[0])"
    )
    spec = ChildSpec(argv=[sys.executable, "-c", probe], user="nobody", memory_mb=300)
    child = Child.spawn(spec)
    assert child.proc.stdout is not None
    out = child.proc.stdout.read().decode()
    assert child.reap(10.0) == 0
    import pwd

    nobody = pwd.getpwnam("nobody")
    uid, gid = nobody.pw_uid, nobody.pw_gid
    assert out.split(maxsplit=4)[:4] == [str(uid), str(uid), str(gid), str(gid)]
    assert "[]" in out
    assert out.split()[-1] == str(300 * 1024 * 1024)
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != 300 * 1024 * 1024  # not ours


@as_root
@needs_setpriv
def test_a_command_the_user_cannot_run_is_named_with_what_to_do(tmp_path: Path) -> None:
    # setpriv execs the command after the switch: what the user cannot run (here: nothing
    # there at all; a folder it may not enter is the usual case) ends the child with 126/127.
    missing = tmp_path / "not-there"
    spec = ChildSpec(argv=[str(missing)], user="nobody", stderr=subprocess.DEVNULL)
    how = Child.spawn(spec).exit_description(10.0)
    assert how.startswith("exited with code 127: user 'nobody' could not run"), how
    assert str(missing) in how and "GF_WORKER_USER" in how


@as_root
@needs_setpriv
def test_popen_is_never_asked_to_switch_user(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real = subprocess.Popen

    def record(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        seen.append({"argv": list(argv), **kwargs})
        return real(argv, **kwargs)

    monkeypatch.setattr(child_module.subprocess, "Popen", record)
    Child.spawn(ChildSpec(argv=["/bin/true"], user="nobody", stdout_pipe=False)).reap(10.0)
    (call,) = seen
    assert call["user"] is None and call["group"] is None and call["extra_groups"] is None
    assert call["argv"][0] == child_module._SETPRIV
    assert "--clear-groups" in call["argv"]
    assert "preexec_fn" not in call
