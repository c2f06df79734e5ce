"""Starting children as another user from a process that is busy with gRPC (real processes).

The HTTP server hosts AIGES wrapper processes through gRPC and starts more children while
those channels are busy. Popen's own user switch makes the spawn a full ``fork()``, which
runs gRPC's fork handlers; they restarted gRPC's pollers inside the child, which then died
of SIGABRT or SIGSEGV before its exec (7 of 2,000 spawns; CI lost a whole test module to one).
Children now switch user after the exec (``setpriv``), so the spawn stays a ``vfork``.
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
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
    nobody = pwd.getpwnam("nobody")
    uid, gid = nobody.pw_uid, nobody.pw_gid
    assert out.split(maxsplit=4)[:4] == [str(uid), str(uid), str(gid), str(gid)]
    assert "[]" in out
    assert out.split()[-1] == str(300 * 1024 * 1024)
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != 300 * 1024 * 1024  # not ours


@as_root
@needs_setpriv
@pytest.mark.parametrize("memory_mb", [None, 300])
def test_a_command_the_user_may_not_reach_is_not_run(tmp_path: Path, memory_mb: int | None) -> None:
    # setpriv still holds root's capabilities when it execs: without a program in between
    # that holds none, a binary in a folder only root may enter ran as the user.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    tool = private / "true"
    shutil.copy("/bin/true", tool)
    spec = ChildSpec(
        argv=[str(tool)], user="nobody", memory_mb=memory_mb, stderr=subprocess.DEVNULL
    )
    assert Child.spawn(spec).exit_description(10.0) == "exited with code 126"
    missing = ChildSpec(argv=["/nonexistent/gf-command"], user="nobody", stderr=subprocess.DEVNULL)
    assert Child.spawn(missing).exit_description(10.0) == "exited with code 127"


@as_root
@needs_setpriv
@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare")
@pytest.mark.parametrize("kind", ["user", "group"])
def test_a_name_that_is_the_users_number_is_refused(tmp_path: Path, kind: str) -> None:
    # setpriv reads --reuid=65534 as a name first: a user (or group) named "65534" with id
    # 0 would have made the child root. Seen in a private mount namespace with our own files.
    nobody = pwd.getpwnam("nobody")
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text(Path("/etc/passwd").read_text())
    group.write_text(Path("/etc/group").read_text())
    if kind == "user":
        with passwd.open("a") as f:
            f.write(f"{nobody.pw_uid}:x:0:0:trap:/root:/bin/sh\n")
    else:
        with group.open("a") as f:
            f.write(f"{nobody.pw_gid}:x:0:\n")
    probe = (
        "from globalfunc.executor.child import Child, ChildSpec\n"
        "from globalfunc.errors import ConfigError\n"
        "try:\n"
        "    Child.spawn(ChildSpec(argv=['/bin/true'], user='nobody')).reap(10)\n"
        "    print('spawned')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    script = (
        f"mount --bind {passwd} /etc/passwd && mount --bind {group} /etc/group && "
        f'exec {sys.executable} -c "$0"'
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    if "mount" in done.stderr and done.returncode != 0:
        pytest.skip(f"cannot bind-mount in a private namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    named = "user" if kind == "user" else "group"
    assert f"a {named} is named" in done.stdout and "GF_WORKER_USER" in done.stdout, done.stdout


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
