"""A real GlobalFunc server process for integration tests, and the folders it serves.

One class, :class:`ServerProcess`, runs a server as a subprocess on a free loopback port,
waits for its ready line, and measures and stops it: the URL and address from the banner,
the pid, the children of every task (isolated workers, forked server processes), VmRSS,
and a log file holding everything it wrote to stderr. Two launch styles, two constructors:

- :meth:`ServerProcess.serve_call`: ``server.serve.serve(root, **kwargs)`` in a
  ``python -c`` child (the kwargs the function takes, e.g. ``storage_url``, ``mode``);
- :meth:`ServerProcess.gf` (and :meth:`ServerProcess.gf_serve`): the ``gf`` CLI,
  ``python -m globalfunc.cli --root ROOT serve|worker ...``, configured by ``GF_*``
  variables over a clean environment.

Also here: :func:`build_registry` (a SQLite registry of ``packages/Base`` and the test
functions) and :func:`make_repo` (a one-commit git packages repository).

Not here: servers the tests need beside GlobalFunc (redis-server, the MongoDB-wire server:
tests/servers.py), and no assertion about what a server answers.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import git

from globalfunc.registry import Registry
from globalfunc.scan import Scanner

REPO = Path(__file__).resolve().parents[2]
TEST_FUNCS = REPO / "tests" / "data" / "funcs"
ERROR_FUNCS = REPO / "tests" / "data" / "errors"

# ``GlobalFunc serving http://HOST:PORT/ (root ..., storage ..., mode ...)``
SERVING = re.compile(r"^GlobalFunc serving (?P<url>http://\S+?)/?(?: |$)")
# a worker prints the serving line too, before it registers: it is ready at its own line
WORKER = re.compile(r"^GlobalFunc worker (?P<name>\S+) at (?P<url>http://\S+?)/?(?: |$)")

_SERVE_CALL = """
import json, logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
from server.serve import serve
args = json.loads(sys.argv[1])
serve(Path(args.pop("root")), **args)
"""


def _base_env() -> dict[str, str]:
    """This environment without any ``GF_*`` variable, with the repo importable and TZ=UTC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GF_")}
    return {**env, "PYTHONPATH": str(REPO), "TZ": "UTC"}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a ``gf`` child gets: no inherited ``GF_*``, inline mode, then ``extra``."""
    return {**_base_env(), "GF_MODE": "inline", **extra}


def build_registry(folder: Path, *, branch: str = "master") -> str:
    """A SQLite registry in ``folder`` holding ``packages/Base`` and the test functions."""
    url = f"sqlite://{folder / 'registry.db'}"
    with Registry.open(url, branch=branch) as registry:
        for root in (REPO / "packages", TEST_FUNCS):
            result = Scanner(root).scan()
            assert not result.problems, result.problems
            registry.save_many(list(result.functions.values()))
    return url


def make_repo(path: Path, source: Path = ERROR_FUNCS) -> Path:
    """A packages repository (git, one commit on master) holding a copy of ``source``."""
    shutil.copytree(source, path, ignore=shutil.ignore_patterns("__pycache__"))
    repo = git.Repo.init(path, initial_branch="master")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "email", "tests@globalfunc.local")
        cfg.set_value("user", "name", "GlobalFunc Tests")
    (path / ".gitignore").write_text(".globalfunc/\n__pycache__/\n")
    repo.git.add(A=True)
    repo.index.commit("test functions")
    repo.close()
    return path


class ServerProcess:
    """One server subprocess: :meth:`start` waits for its ready line, :meth:`stop` ends it.

    After :meth:`start`: ``banner`` is the ready line, ``url`` the base URL with a trailing
    ``/`` (``base_url`` without it), ``name`` the worker's name (``gf worker`` only).
    """

    def __init__(
        self, argv: list[str], *, env: dict[str, str], log_path: Path, ready: re.Pattern[str]
    ) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.banner = self.url = self.base_url = self.name = ""

    # -- the two launch styles --------------------------------------------------------
    @classmethod
    def serve_call(cls, tmp: Path, **kwargs: Any) -> ServerProcess:
        """``server.serve.serve(root, host="127.0.0.1", port=0, **kwargs)``; the log in ``tmp``.

        ``root`` defaults to the repo's ``packages/``; the kwargs travel as JSON.
        """
        args = {"root": str(REPO / "packages"), "host": "127.0.0.1", "port": 0, **kwargs}
        return cls(
            [sys.executable, "-c", _SERVE_CALL, json.dumps(args)],
            env=_base_env(),
            log_path=tmp / f"server-{os.getpid()}-{time.monotonic_ns()}.log",
            ready=SERVING,
        )

    @classmethod
    def gf(
        cls,
        root: Path,
        *args: str,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> ServerProcess:
        """``gf --root ROOT ARGS`` (``serve`` gets ``--port 0`` unless ARGS name a port).

        The child's environment is :func:`clean_env` (inline mode unless ``GF_MODE`` or
        ``--mode`` says otherwise) updated with ``env``; the log goes to ``log_dir``
        (default: beside ``root``).
        """
        argv = [sys.executable, "-m", "globalfunc.cli", "--root", str(root), *args]
        if args[:1] == ("serve",) and "--port" not in args:
            argv += ["--port", "0"]
        folder = log_dir if log_dir is not None else root.parent
        command = args[0] if args else "gf"
        return cls(
            argv,
            env={**clean_env(), **(env or {})},
            log_path=folder / f"{root.name}-{command}-{time.monotonic_ns()}.log",
            ready=WORKER if command == "worker" else SERVING,
        )

    @classmethod
    def gf_serve(
        cls, root: Path, log_dir: Path, *args: str, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """``gf --root ROOT serve --port 0 ARGS``, logging into ``log_dir``."""
        return cls.gf(root, "serve", *args, env=env, log_dir=log_dir)

    # -- running --------------------------------------------------------------------------
    def run(self, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        """Run to completion, output captured (for a server that must refuse to start)."""
        return subprocess.run(
            self.argv, env=self.env, cwd=str(REPO), capture_output=True, timeout=timeout
        )

    def start(self, wait: float = 90.0) -> ServerProcess:
        """Spawn the server and return once its ready line is out, within ``wait`` seconds.

        Raises RuntimeError (``server did not start``, with its output and log) if the
        process exits first or the line does not come in time; the process is killed then.
        """
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=self._log, cwd=str(REPO)
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + wait
        output = b""
        while True:
            for line in output.decode(errors="replace").splitlines(keepends=True):
                match = self.ready.match(line)
                if match and line.endswith("\n"):
                    self.banner = line.strip()
                    self.base_url = match["url"]
                    self.url = self.base_url + "/"
                    self.name = match.groupdict().get("name") or ""
                    return self
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop(signal.SIGKILL)
                raise RuntimeError(
                    f"server did not start: {self.argv[2:]!r}\noutput {output!r}\nlog:\n{self.log()}"
                )
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                output += os.read(self.proc.stdout.fileno(), 4096)

    def stop(self, sig: int = signal.SIGTERM, wait: float = 30.0) -> int | None:
        """Send ``sig``; after ``wait`` seconds SIGKILL. The exit code (None: never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    # -- what tests look at -----------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` from the URL, for raw sockets."""
        host, _, port = self.base_url.split("//", 1)[1].rpartition(":")
        return host.strip("[]"), int(port)

    def children(self) -> list[int]:
        """The child pids of every task (thread) of the server process, sorted.

        A pool that spawns from its own threads has children listed under those threads'
        ``/proc/PID/task/TID/children``, not only under the main thread's.
        """
        found: set[int] = set()
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                found.update(int(p) for p in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):
                continue  # that thread ended while we looked
        return sorted(found)

    def rss_kib(self, pid: int | None = None) -> int:
        """VmRSS of the server process (or ``pid``), KiB, from /proc."""
        status = Path(f"/proc/{pid or self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS line in /proc/{pid or self.pid}/status")

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
