"""A real ``gf serve`` (or ``gf worker``) subprocess over a git packages repository in a tmp dir."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import git

REPO = Path(__file__).resolve().parents[2]
ERROR_FUNCS = REPO / "tests" / "data" / "errors"
SERVING = re.compile(r"^GlobalFunc serving (http://\S+?)/?[ \n]")
# a worker prints the serving line too, before it registers: wait for its own line
WORKER = re.compile(r"^GlobalFunc worker \S+ at (http://\S+?)/?[ \n]")


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


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GF_")}
    env.update({"PYTHONPATH": str(REPO), "TZ": "UTC", "GF_MODE": "inline", **extra})
    return env


class GfProcess:
    """``python -m globalfunc.cli --root ROOT <args>``; :meth:`wait` reads the banner's URL."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_path = root.parent / f"{root.name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "globalfunc.cli", "--root", str(root), *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env or clean_env(),
            cwd=str(REPO),
        )
        self.url = ""
        self._ready = WORKER if "worker" in args else SERVING

    def wait(self, within: float = 60.0) -> GfProcess:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within
        buffer = b""
        while True:
            for line in buffer.decode(errors="replace").splitlines(keepends=True):
                match = self._ready.match(line)
                if match and line.endswith("\n"):
                    self.url = match[1]
                    return self
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"gf did not start: {buffer!r}\n{self.log_path.read_text()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                buffer += os.read(self.proc.stdout.fileno(), 4096)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode
