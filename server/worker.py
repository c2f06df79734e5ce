"""A worker's life: serve on the first free port of a range, register, beat, deregister.

``gf worker`` calls :func:`run_worker` with plain values (reading ``GF_*`` settings and
saving the functions are the CLI's job). It picks the first bindable port of the range
(:func:`globalfunc.workers.pick_port`), serves there with :func:`server.serve.serve`, and
when the server is ready registers the worker in the Redis directory and starts its
:class:`Heartbeat`; on SIGTERM/SIGINT the heartbeat stops and the entry is removed at
once. When another process takes the port between the probe and the bind, the next free
port is tried.

Not here: the directory's layout and the names (:mod:`globalfunc.workers`), choosing a
worker per call (:mod:`globalfunc.client`).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from globalfunc.errors import ConfigError, StorageError
from globalfunc.workers import (
    WorkerDirectory,
    WorkerInfo,
    machine_memory_mb,
    memory_gb,
    pick_port,
    worker_name,
)

__all__ = [
    "Heartbeat",
    "WorkerLabels",
    "advertised_url",
    "default_memory_gb",
    "hostname",
    "run_worker",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerLabels:
    """What a worker's name says besides its port."""

    host: str
    version: str
    memory_gb: int
    gpu_gb: int = 0

    def check(self, port: int) -> str:
        """The name with ``port``; :class:`~globalfunc.errors.InvalidName` for a bad label."""
        return worker_name(self.host, self.version, self.memory_gb, self.gpu_gb, port)


def hostname() -> str:
    """This machine's short host name (the default host label of a worker)."""
    return socket.gethostname().split(".")[0] or "localhost"


def default_memory_gb(mode: str, cap_mb: int | None) -> int:
    """The memory one call may use, for the name: the per-call cap of the isolated mode
    (GF_MEMORY_MB) if the machine or container has that much, else the container's
    (cgroup) limit or the machine's RAM."""
    machine = machine_memory_mb()
    if mode == "isolated" and cap_mb:
        return memory_gb(min(cap_mb, machine) if machine else cap_mb)
    return memory_gb(machine)


def advertised_url(url: str, advertise: str | None) -> str:
    """The URL clients use: ``url`` with its host replaced by ``advertise``, or by this
    machine's name when the server listens on a wildcard address."""
    parts = urllib.parse.urlsplit(url)
    host = advertise
    if host is None and parts.hostname in (None, "", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if host is None:
        return url
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))


def _address_in_use(exc: ConfigError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


def run_worker(
    root: Path,
    *,
    directory: WorkerDirectory,
    labels: WorkerLabels,
    host: str,
    ports: tuple[int, int],
    heartbeat: float,
    serve_options: Mapping[str, Any],
    advertise: str | None = None,
    announce: Callable[[WorkerInfo], None] | None = None,
) -> None:
    """Serve ``root`` as a registered worker until SIGTERM/SIGINT.

    ``serve_options`` are the keyword arguments of :func:`server.serve.serve` other than
    where to listen. ``announce`` hears the worker's entry once it is registered (the CLI
    prints it). Raises :class:`~globalfunc.errors.StorageUnavailable` before taking a
    port when Redis does not answer, :class:`~globalfunc.errors.ConfigError` when every
    port of the range is taken.
    """
    from server.serve import serve

    first, last = ports
    labels.check(first)  # labels fail before anything starts
    directory.ping()  # before taking a port
    port = pick_port(host, first, last)
    beating: Heartbeat | None = None
    lock = threading.Lock()

    def ready(url: str) -> None:
        nonlocal beating
        bound = int(url.rstrip("/").rsplit(":", 1)[1])
        info = WorkerInfo.new(
            host=labels.host,
            version=labels.version,
            memory_gb=labels.memory_gb,
            gpu_gb=labels.gpu_gb,
            port=bound,
            url=advertised_url(url, advertise),
            root=str(root),
            branch=serve_options.get("branch"),
            packages=serve_options.get("allow_packages"),
        )
        started = Heartbeat(directory, info, interval=heartbeat).start()
        with lock:
            beating = started
        if announce is not None:
            announce(started.info)

    def stopping() -> None:
        nonlocal beating
        with lock:
            current, beating = beating, None
        if current is not None:
            current.stop()
            log.info("worker %s deregistered", current.name)

    try:
        while True:
            try:
                serve(
                    root,
                    host=host,
                    port=port,
                    processes=1,
                    on_ready=ready,
                    on_stop=stopping,
                    **serve_options,
                )
                return
            except ConfigError as exc:
                # another process took the port between the probe and the bind
                if not _address_in_use(exc) or port >= last:
                    raise
                port = pick_port(host, port + 1, last)
    finally:
        stopping()


class Heartbeat:
    """Keeps a worker registered: a daemon thread refreshing its entry every ``interval`` s.

    :meth:`start` registers synchronously (so a Redis that is down fails the worker's
    start) and then beats; the entry lives ``ttl`` seconds (default three intervals)
    past each beat. When a beat fails, one warning is logged for the whole outage and
    the thread keeps trying; when the entry is gone (expired during an outage, Redis
    restarted) it is registered again. :meth:`stop` ends the thread and deregisters.
    """

    def __init__(
        self,
        directory: WorkerDirectory,
        info: WorkerInfo,
        *,
        interval: float = 5.0,
        ttl: float | None = None,
    ) -> None:
        if not interval > 0:
            raise ConfigError(f"heartbeat interval must be positive, got {interval!r}")
        self.directory = directory
        self.info = info
        self.interval = interval
        self.ttl = ttl if ttl is not None else 3 * interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def name(self) -> str:
        return self.info.name

    def start(self) -> Heartbeat:
        self.info = self.directory.register(self.info, self.ttl)
        self._thread = threading.Thread(
            target=self._run, name=f"gf-heartbeat-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def beat(self) -> None:
        """One heartbeat (what the thread does every interval); errors are logged, not raised."""
        try:
            if not self.directory.heartbeat(self.name, self.ttl):
                self.info = self.directory.register(self.info, self.ttl)
                log.info("worker %s registered again: its entry had expired", self.name)
        except StorageError as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    "worker %s: heartbeat failed, retrying every %gs: %s",
                    self.name,
                    self.interval,
                    exc.message,
                )
            return
        if self._failing:
            self._failing = False
            log.info("worker %s: heartbeat restored", self.name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self, *, deregister: bool = True) -> None:
        """Stop beating and (by default) remove the entry; never raises for Redis."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.interval + 2 * self.directory.timeout + 1)
        if deregister:
            try:
                self.directory.deregister(self.name)
            except StorageError as exc:
                log.warning(
                    "worker %s could not deregister (its entry expires in %gs): %s",
                    self.name,
                    self.ttl,
                    exc.message,
                )
