"""Helpers for the HTTP integration tests: a registry with test functions, a real server process."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from globalfunc.registry import Registry
from globalfunc.scan import Scanner

REPO = Path(__file__).resolve().parents[2]
TEST_FUNCS = REPO / "tests" / "data" / "funcs"

_LAUNCH = """
import json, logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
from server.serve import serve
args = json.loads(sys.argv[1])
serve(Path(args.pop("root")), **args)
"""


def build_registry(folder: Path, *, branch: str = "master") -> str:
    """A SQLite registry in ``folder`` holding ``packages/Base`` and the test functions."""
    url = f"sqlite://{folder / 'registry.db'}"
    with Registry.open(url, branch=branch) as registry:
        for root in (REPO / "packages", TEST_FUNCS):
            result = Scanner(root).scan()
            assert not result.problems, result.problems
            registry.save_many(list(result.functions.values()))
    return url


class ServerProcess:
    """``server.serve.serve`` in a subprocess on a free loopback port (``port=0``)."""

    def __init__(self, tmp: Path, **kwargs: Any) -> None:
        self.tmp = tmp
        self.kwargs = {"root": str(REPO / "packages"), "host": "127.0.0.1", "port": 0, **kwargs}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.banner = ""
        self.log_path = tmp / f"server-{os.getpid()}-{time.monotonic_ns()}.log"

    def start(self, wait: float = 60.0) -> ServerProcess:
        env = {**os.environ, "TZ": "UTC", "PYTHONPATH": str(REPO)}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, json.dumps(self.kwargs)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=str(REPO),
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + wait
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"server did not start; log:\n{self.log()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                line += chunk
        self.banner = line.decode().strip()
        self.url = self.banner.split()[2]
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, wait: float = 30.0) -> int | None:
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
        self._log.close()
        return self.proc.returncode
