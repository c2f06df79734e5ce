"""A wrapper.py engine in its own plugin process, so ``gf serve`` survives what it does.

``gf serve --aiges-wrapper DIR`` serves AIGES wrappers over the ase HTTP protocol. In the
default isolated mode each wrapper runs in a child process: GlobalFunc's own AIGES plugin
(``python -m server.aiges``, on the C++ server when it is built), started and driven the
way the loader drives it (:class:`~server.aiges.client.LoaderClient`). The HTTP server
only sees an :class:`~server.aiges.engine.Engine`:

- a call that runs past ``call_timeout`` answers ``ExecutionTimeout`` (10102) and the
  child is replaced (its stuck thread cannot be stopped otherwise);
- a child that dies (a crash, ``os._exit``, the memory cap) answers ``WorkerCrashed``
  (10910) for the calls it held, and the next call starts a fresh one (init runs again);
- the child's address space is capped at ``memory_mb`` (``ulimit -v``), and it sees
  none of the server's ``GF_*`` settings (so not the token).

Sessions are not served over HTTP, so ``create``/``write``/``destroy`` answer an error.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

from globalfunc.errors import ExecutionTimeout, WorkerCrashed
from server.aiges.client import LoaderClient, PluginStartError, loader_env
from server.aiges.engine import (
    EXEC_FAILED,
    INIT_FAILED,
    Emit,
    Frame,
    Outcome,
    split_error_detail,
)
from server.aiges.proto import aiges_pb2

__all__ = ["ProcessEngine", "native_built"]

log = logging.getLogger(__name__)

_AIGES_DIR = Path(__file__).resolve().parent
_IMPORT_ROOT = _AIGES_DIR.parents[1]  # the folder that holds the `server` package
START_TIMEOUT = 60.0
SESSIONS_UNSUPPORTED = "sessions are not served over the ase HTTP protocol"


def native_built() -> bool:
    """Whether the C++ plugin server (``make native``) is there to use."""
    return any(_AIGES_DIR.glob("_native*.so"))


class ProcessEngine:
    """Engine for a wrapper served by a child plugin process; see the module docstring."""

    def __init__(
        self,
        wrapper: str | os.PathLike[str],
        *,
        call_timeout: float = 30.0,
        memory_mb: int | None = None,
        workers: int = 4,
        native: bool | None = None,
    ) -> None:
        self.wrapper = Path(wrapper)
        self.call_timeout = call_timeout
        self.memory_mb = memory_mb
        self.workers = max(1, workers)
        self.native = native_built() if native is None else native
        self.load_error = ""
        self._config: dict[str, str] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._client: LoaderClient | None = None  # the running child's client
        self._lock = threading.Lock()
        self.restarts = 0

    # -- the child ----------------------------------------------------------------------
    def _command(self) -> str:
        parts = [sys.executable, "-m", "server.aiges", "--wrapper", str(self.wrapper)]
        parts += ["--workers", str(self.workers), "--log-level", "WARNING", "--error-details"]
        parts += ["--server", "native" if self.native else "python"]
        command = " ".join(map(shlex.quote, parts))
        if self.memory_mb:
            command = f"ulimit -v {int(self.memory_mb) * 1024} && exec {command}"
        else:
            command = f"exec {command}"
        return command

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("GF_")}
        path = os.pathsep.join(p for p in (str(_IMPORT_ROOT), base.get("PYTHONPATH")) if p)
        extra = {"PYTHONPATH": path}
        if self.memory_mb:
            # Under an address-space cap, glibc's per-thread malloc arenas (64 MiB of
            # address space each) would use it up before the wrapper does.
            extra.setdefault("MALLOC_ARENA_MAX", base.get("MALLOC_ARENA_MAX", "2"))
        return loader_env(base, **extra)

    def _start(self) -> LoaderClient:
        """Start and init a child; returns its client or raises RuntimeError with why."""
        try:
            client = LoaderClient.start(self._command(), env=self._env(), timeout=START_TIMEOUT)
        except (PluginStartError, OSError) as exc:
            raise RuntimeError(f"the wrapper process did not start: {exc}") from exc
        try:
            ret = client.init(self._config, timeout=START_TIMEOUT)
            if ret != 0:
                raise RuntimeError(
                    f"wrapperInit returned {ret}; plugin log:\n{_tail(client.stderr_text())}"
                )
            client.open_communicate()
        except Exception as exc:
            client.close()
            if isinstance(exc, RuntimeError):
                raise
            raise RuntimeError(f"the wrapper process failed to init: {exc}") from exc
        return client

    def _running(self) -> LoaderClient:
        with self._lock:
            client = self._client
            if client is not None and _exit_code(client) is None and not client.stream_closed:
                return client
            if client is not None:
                self._retire(client, "it exited")
            self._client = self._start()
            self.restarts += 1
            return self._client

    def _retire(self, client: LoaderClient, why: str) -> None:
        """Drop ``client``'s child (killed if still running). Call with the lock held."""
        code = _exit_code(client)
        log.warning(
            "wrapper %s: replacing its process (%s%s)",
            self.wrapper,
            why,
            "" if code is None else f", exit code {code}",
        )
        client.close()
        if self._client is client:
            self._client = None

    def _replace(self, client: LoaderClient, why: str) -> None:
        with self._lock:
            if self._client is client:
                self._retire(client, why)

    # -- Engine -------------------------------------------------------------------------
    def bind(self, emit: Emit) -> None:
        """Session results never come back over HTTP; nothing to route."""

    def init(self, config: dict[str, str]) -> int:
        self._config = dict(config)
        try:
            with self._lock:
                self._client = self._start()
        except RuntimeError as exc:
            self.load_error = str(exc)
            return INIT_FAILED
        return 0

    def schema(self, service_id: str) -> dict[str, Any]:
        if service_id not in self._schemas:
            self._schemas[service_id] = self._running().schema(service_id)
        return self._schemas[service_id]

    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        try:
            client = self._running()
        except RuntimeError as exc:
            return Outcome.failure(WorkerCrashed.aiges_code, f"cannot restart the wrapper: {exc}")
        items = [
            aiges_pb2.RequestData(
                key=f.key, data=f.data, len=len(f.data), type=f.type, status=f.status, desc=f.desc
            )
            for f in frames
        ]
        began = time.monotonic()
        try:
            reply = client.once(params, items, timeout=self.call_timeout)
        except TimeoutError:
            self._replace(client, f"a call ran past {self.call_timeout:g}s")
            return Outcome.failure(
                ExecutionTimeout.aiges_code,
                f"the wrapper did not answer within {self.call_timeout:g}s; "
                "its process was replaced",
            )
        except Exception as exc:  # StreamClosed, or the unary failed: the child is gone
            code = _exit_code(client)
            self._replace(client, f"{type(exc).__name__}: {exc}")
            return Outcome.failure(
                WorkerCrashed.aiges_code,
                "the wrapper process died during the call"
                + ("" if code is None else f" (exit code {code})")
                + f" after {time.monotonic() - began:.2f}s",
            )
        outcome = Outcome(
            ret=reply.ret,
            frames=[Frame(d.key, d.data, d.type, d.status, dict(d.desc)) for d in reply.list],
            message=f"wrapper error {reply.ret}" if reply.ret else "",
        )
        return split_error_detail(outcome) if reply.ret else outcome

    def create(self, params: dict[str, str], sid: str, tag: str) -> tuple[str, int]:
        log.warning("wrapper %s: %s", self.wrapper, SESSIONS_UNSUPPORTED)
        return "", EXEC_FAILED

    def write(self, handle: str, frames: list[Frame], sid: str) -> int:
        return EXEC_FAILED

    def destroy(self, handle: str) -> int:
        return EXEC_FAILED

    def fini(self) -> int:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.shutdown(timeout=5)
            client.close()
        return 0


def _exit_code(client: LoaderClient) -> int | None:
    """The child's exit code; ``None`` while it runs."""
    return None if client.process is None else client.process.poll()


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
