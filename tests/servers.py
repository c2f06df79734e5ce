"""Real servers for tests and benchmarks: ``redis-server`` and the nx-27017 MongoDB-wire server.

Each server runs as a child process on a free loopback port with its own data dir, pid
file and log file under a given directory. ``start()`` waits until the server answers
a real command over TCP; ``stop()`` ends it (SIGTERM, then SIGKILL); ``kill()`` is a
SIGKILL of the server's pid, for fault tests, and ``start()`` again restarts it on the
same port. A missing binary raises :class:`ServerMissing` saying how to install it.

The pytest fixtures built on these live in ``tests/conftest.py``; ``bench/`` uses the
same classes. Nothing here reads settings or touches servers it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["MongoServer", "RedisServer", "ServerMissing", "free_port"]

HOST = "127.0.0.1"


class ServerMissing(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class _Server:
    name = "server"

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.data_dir = self.root / "data"
        self.pid_file = self.root / f"{self.name}.pid"
        self.log_file = self.root / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # subclasses
    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    # lifecycle
    def start(self, wait: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} on port {self.port}; "
                    f"see {self.log_file}:\n{self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if self.answers():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer on port {self.port} within {wait}s; "
            f"see {self.log_file}:\n{self.log_tail()}"
        )

    @property
    def pid(self) -> int:
        """The server's pid, from its pid file when it wrote one, else the child's."""
        with contextlib.suppress(OSError, ValueError):
            return int(self.pid_file.read_text().strip())
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests) and wait until it is gone."""
        os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    def stop(self) -> None:
        """End the server: SIGCONT (a fault test may have left it stopped), SIGTERM, then
        SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""


class RedisServer(_Server):
    """A ``redis-server`` with no persistence across restarts (``save ""``, no AOF)."""

    name = "redis"

    def __init__(self, root: Path, port: int | None = None) -> None:
        super().__init__(root, port)
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerMissing(
                "redis-server is not installed: run `make system-deps` "
                "(or `apt-get install redis-server`) and try again"
            )
        self.binary = binary

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.data_dir),
            "--pidfile", str(self.pid_file),
            "--logfile", str(self.log_file),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def answers(self) -> bool:
        import redis

        client = redis.Redis(host=HOST, port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def flush(self) -> None:
        import redis

        client = redis.Redis(host=HOST, port=self.port, socket_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()


class MongoServer(_Server):
    """The nx-27017 MongoDB-wire-protocol server (SQLite files under ``data_dir``)."""

    name = "nx-27017"

    def __init__(self, root: Path, port: int | None = None) -> None:
        super().__init__(root, port)
        candidate = Path(sys.executable).with_name("nx-27017")
        binary = str(candidate) if candidate.exists() else shutil.which("nx-27017")
        if binary is None:
            raise ServerMissing(
                "the nx-27017 MongoDB-wire server is not installed: run "
                "`pip install -e '.[dev]'` (it pins nx-27017) and try again"
            )
        self.binary = binary

    def command(self) -> list[str]:
        return [
            self.binary,
            "--data-dir", str(self.data_dir),
            "--host", HOST,
            "--port", str(self.port),
            "--pid-file", str(self.pid_file),
            "--log-file", str(self.log_file),
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/gf_test"

    def answers(self) -> bool:
        import pymongo

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            HOST, self.port, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        )
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    def flush(self, db: str = "gf_test") -> None:
        import pymongo

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            HOST, self.port, serverSelectionTimeoutMS=5000
        )
        try:
            database = client[db]
            for name in database.list_collection_names():
                database.drop_collection(name)
        finally:
            client.close()
