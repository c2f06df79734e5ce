"""``gf serve`` as a real subprocess on a free loopback port, and what tests measure of it."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class GfServe:
    """``python -m globalfunc.cli --root ROOT serve --port 0 ARGS`` with ``env`` added."""

    def __init__(
        self, root: Path, log_dir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.argv = [sys.executable, "-m", "globalfunc.cli", "--root", str(root), "serve"]
        if "--port" not in args:
            self.argv += ["--port", "0"]
        self.argv += list(args)
        base = {k: v for k, v in os.environ.items() if not k.startswith("GF_")}
        self.env = {**base, "PYTHONPATH": str(REPO), "TZ": "UTC", **(env or {})}
        self.log_path = log_dir / f"gf-serve-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.banner = ""

    def run(self, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        """Run to completion (for a server that must refuse to start)."""
        return subprocess.run(self.argv, env=self.env, capture_output=True, timeout=timeout)

    def start(self, wait: float = 90.0) -> GfServe:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=self._log, cwd=str(REPO)
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + wait
        buf = b""
        while b"GlobalFunc serving" not in buf or not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"gf serve did not start; log:\n{self.log()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if chunk:
                    buf += chunk
        self.banner = next(
            line for line in buf.decode().splitlines() if line.startswith("GlobalFunc serving")
        )
        self.url = self.banner.split()[2]
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        hostport = self.url.split("//", 1)[1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        return host.strip("[]"), int(port)

    def rss_kib(self, pid: int | None = None) -> int:
        """VmRSS of the server process (or ``pid``), KiB, from /proc."""
        status = Path(f"/proc/{pid or self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def children(self) -> list[int]:
        """Direct child processes (forked server processes, isolated workers)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()]

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
