"""A worker's life: serve on the first free port of a range, register, beat, deregister.

``gf worker`` calls :func:`run_worker` with plain values (reading ``GF_*`` settings and
saving the functions are the CLI's job). It picks the first bindable port of the range
(:func:`globalfunc.workers.pick_port`), serves there with :func:`server.serve.serve`, and
when the server is ready registers the worker in the Redis directory and starts its
:class:`Heartbeat`; on SIGTERM/SIGINT the heartbeat stops and the entry is removed at
once. When another process takes the port between the probe and the bind, the next free
port is tried.

Every call goes through one :class:`~globalfunc.idempotency.CallGuard` (installed here):
calls in flight are counted and published in each heartbeat, an ``Idempotency-Key`` runs
once across the workers sharing the Redis, and ``gf workers drain NAME`` (a command the
heartbeat thread reads from Redis) refuses new calls with 503, waits for the ones in
flight, deregisters and stops the server; ``gf workers stop NAME`` stops it at once
(as SIGTERM does).

The advertised address is never a loopback one for a non-loopback bind: behind
``0.0.0.0`` the worker advertises the machine's name when it resolves to a non-loopback
address, else the local address of its connection to Redis, else it refuses to start
and asks for ``--advertise``.

Not here: the directory's layout and the names (:mod:`globalfunc.workers`), choosing a
worker per call (:mod:`globalfunc.client`).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from globalfunc import idempotency
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


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _address_towards(host: str, port: int) -> str | None:
    """The local address this machine uses to reach ``host:port`` (no packet is sent)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.connect(address)
            return str(sock.getsockname()[0])
    except OSError:
        return None


def advertised_url(url: str, advertise: str | None, redis_url: str | None = None) -> str:
    """The URL clients use: ``url`` with its host replaced by ``advertise``; behind a
    wildcard address, by this machine's name, or (when that name resolves to a loopback
    address) by the local address of the route to Redis. A loopback address is never
    advertised for a non-loopback bind: :class:`ConfigError` asks for ``--advertise``."""
    parts = urllib.parse.urlsplit(url)
    host = advertise
    bound = parts.hostname or ""
    if host is None and bound in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
        if _loopback(host):
            target = urllib.parse.urlsplit(redis_url or "")
            towards = (
                _address_towards(target.hostname, target.port or 6379) if target.hostname else None
            )
            if towards is None or _loopback(towards):
                raise ConfigError(
                    f"this worker listens on {bound or '*'} but its machine name {host!r} "
                    "resolves to a loopback address, and so does the route to Redis: clients "
                    "elsewhere could not reach it; pass --advertise HOST (the name or address "
                    "other machines reach this one at)"
                )
            host = towards
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
    redis_url: str | None = None,
    idempotency_ttl: float = idempotency.DEFAULT_TTL,
) -> None:
    """Serve ``root`` as a registered worker until SIGTERM/SIGINT.

    ``serve_options`` are the keyword arguments of :func:`server.serve.serve` other than
    where to listen. ``announce`` hears the worker's entry once it is registered (the CLI
    prints it). Raises :class:`~globalfunc.errors.StorageUnavailable` before taking a
    port when Redis does not answer, :class:`~globalfunc.errors.ConfigError` when every
    port of the range is taken. ``redis_url`` (the directory's, unredacted) finds the
    address to advertise behind ``0.0.0.0`` and holds the calls' outcome record (without
    it, the directory's redacted URL: enough for a Redis without a password);
    ``idempotency_ttl`` is how long each call's outcome is kept (``GF_IDEMPOTENCY_TTL``).
    """
    from server.serve import serve

    first, last = ports
    labels.check(first)  # labels fail before anything starts
    directory.ping()  # before taking a port
    port = pick_port(host, first, last)
    if advertise is None:  # refuse a loopback address before serving
        advertised_url(f"http://{host}:{port}/", None, redis_url)
    beating: Heartbeat | None = None
    lock = threading.Lock()
    # on the server's loop (redis.asyncio): a slow Redis holds only keyed calls
    record = idempotency.AsyncOutcomeRecord(
        redis_url if redis_url is not None else directory.url,
        ttl=idempotency_ttl,
        prefix=directory.prefix,
        timeout=directory.timeout,
    )
    guard = idempotency.CallGuard(
        record,
        alive=lambda owner: _owner_url(directory, owner),
    )
    idempotency.install(guard)

    def ready(url: str) -> None:
        nonlocal beating
        bound = int(url.rstrip("/").rsplit(":", 1)[1])
        info = WorkerInfo.new(
            host=labels.host,
            version=labels.version,
            memory_gb=labels.memory_gb,
            gpu_gb=labels.gpu_gb,
            port=bound,
            url=advertised_url(url, advertise, redis_url),
            root=str(root),
            branch=serve_options.get("branch"),
            packages=serve_options.get("allow_packages"),
        )
        guard.owner = f"{info.name} {info.pid}"
        started = Heartbeat(directory, info, interval=heartbeat, guard=guard).start()
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
        idempotency.install(None)


def _owner_url(directory: WorkerDirectory, owner: str) -> str | None:
    """The URL of the worker ``"<name> <pid>"`` while it is registered with that pid."""
    name, _, pid = owner.partition(" ")
    try:
        info = directory.get(name)
    except (StorageError, ValueError):
        return None
    except Exception:  # an owner string that is no worker name
        return None
    return info.url if info is not None and str(info.pid) == pid else None


class Heartbeat:
    """Keeps a worker registered: a daemon thread refreshing its entry every ``interval`` s.

    :meth:`start` registers synchronously (so a Redis that is down fails the worker's
    start) and then beats; the entry lives ``ttl`` seconds (default three intervals)
    past each beat. When a beat fails, one warning is logged for the whole outage and
    the thread keeps trying; when the entry is gone (expired during an outage, Redis
    restarted) it is registered again. :meth:`stop` ends the thread and deregisters.

    With a ``guard``, each beat publishes its calls in flight, and the thread looks for a
    ``drain`` or ``stop`` command every ``tick`` seconds (see the module docstring).
    """

    def __init__(
        self,
        directory: WorkerDirectory,
        info: WorkerInfo,
        *,
        interval: float = 5.0,
        ttl: float | None = None,
        guard: idempotency.CallGuard | None = None,
        tick: float = 0.5,
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
        self.guard = guard
        self.tick = min(tick, interval)
        self.drain_poll = 0.05

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
        guard = self.guard
        try:
            if not self.directory.heartbeat(
                self.name,
                self.ttl,
                inflight=None if guard is None else guard.inflight,
                draining=None if guard is None else guard.draining is not None,
            ):
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
        due = time.monotonic() + self.interval
        while not self._stop.wait(self.tick if self.guard is not None else self.interval):
            if self.guard is not None and self._command():
                return
            if time.monotonic() >= due:
                due = time.monotonic() + self.interval
                self.beat()

    def _command(self) -> bool:
        """Act on a ``drain`` or ``stop`` command; ``True`` once the worker is stopping."""
        try:
            what = self.directory.take_command(self.name)
        except StorageError:
            return False  # beat() reports the outage
        if what is None:
            return False
        assert self.guard is not None
        log.info("worker %s: %s requested", self.name, what)
        if what == "drain":
            self.guard.draining = "draining"
            self.beat()  # clients see it at their next refresh
            due = time.monotonic() + self.interval
            while self.guard.inflight > 0 and not self._stop.wait(self.drain_poll):
                if time.monotonic() >= due:  # a long call must not let the entry expire
                    due = time.monotonic() + self.interval
                    self.beat()
            log.info("worker %s drained: no call in flight", self.name)
        else:
            self.guard.draining = "stopping"
        os.kill(os.getpid(), signal.SIGTERM)  # the server's own stop: deregister, close
        return True

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
