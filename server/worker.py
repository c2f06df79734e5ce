"""A worker's life: serve on the first free port of a range, register, beat, deregister.

``gf worker`` calls :func:`run_worker` with plain values (reading ``GF_*`` settings and
saving the functions are the CLI's job). It picks the first bindable port of the range
(:func:`globalfunc.workers.pick_port`), serves there with :func:`server.serve.serve`, and
when the server is ready registers the worker in the Redis directory and starts its
:class:`~server.heartbeat.Heartbeat`; on SIGTERM/SIGINT the heartbeat stops and the entry is removed at
once. When another process takes the port between the probe and the bind, the next free
port is tried.

Every call goes through one :class:`~globalfunc.idempotency.CallGuard` (installed here):
calls in flight are counted and published in each heartbeat, and an ``Idempotency-Key``
runs once across the workers sharing the Redis.

Stopping. A *drain* refuses new calls with 503 (nothing ran: clients send them to another
worker), publishes ``draining`` at once (clients stop choosing it), keeps the entry alive
while the calls in flight finish (so their keys stay owned by a live worker), then
deregisters and stops the server. ``gf workers drain NAME`` drains with no deadline;
SIGTERM drains for at most ``stop_grace`` seconds (``GF_STOP_GRACE``, 8 s: under
docker's 10 s before SIGKILL), then stops, interrupting what still runs; a second
SIGTERM, SIGINT and ``gf workers stop NAME`` stop at once (``--grace S``: a drain of at
most S seconds). Commands come through Redis addressed to this start of the worker (its
``instance``); the heartbeat thread reads them every ``tick`` even while a drain waits.

One name, one live worker: before serving, and atomically when it registers, a worker
refuses to start when another instance's entry holds its name and that worker's URL
accepts connections (a dead one's entry is taken over).

The advertised address (``--advertise``, checked by :func:`server.advertise.parse_advertise`) is never a
loopback one for a non-loopback bind: behind ``0.0.0.0`` the worker advertises the
machine's name when it resolves to a non-loopback address, else the local address of its
connection to Redis, else it refuses to start and asks for ``--advertise``.

Not here: the directory's layout and the names (:mod:`globalfunc.workers`), choosing a
worker per call (:mod:`globalfunc.client`), the address to advertise
(:mod:`server.advertise`), keeping the entry alive and taking commands
(:mod:`server.heartbeat`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import os
import secrets
import signal
import socket
import threading
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
from server.advertise import advertised_url, bracketed, parse_advertise, unbracketed
from server.heartbeat import Heartbeat, name_taken

__all__ = [
    "DEFAULT_STOP_GRACE",
    "WorkerLabels",
    "default_memory_gb",
    "hostname",
    "run_worker",
]

log = logging.getLogger(__name__)

#: seconds a SIGTERMed worker lets its calls in flight finish (GF_STOP_GRACE)
DEFAULT_STOP_GRACE = 8.0


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
    idempotency_max_result: int = idempotency.DEFAULT_MAX_RESULT,
    stop_grace: float = DEFAULT_STOP_GRACE,
) -> None:
    """Serve ``root`` as a registered worker until it is stopped (see the module).

    ``serve_options`` are the keyword arguments of :func:`server.serve.serve` other than
    where to listen. ``announce`` hears the worker's entry once it is registered (the CLI
    prints it). Raises :class:`~globalfunc.errors.StorageUnavailable` before taking a
    port when Redis does not answer, :class:`~globalfunc.errors.ConfigError` when every
    port of the range is taken, ``advertise`` is malformed or loopback for a non-loopback
    bind, or a live worker holds the name. ``redis_url`` (the directory's, unredacted)
    finds the address to advertise behind ``0.0.0.0`` and holds the calls' outcome record
    (without it, the directory's redacted URL: enough for a Redis without a password);
    ``idempotency_ttl`` is how long each call's outcome is kept (``GF_IDEMPOTENCY_TTL``),
    ``idempotency_max_result`` the largest answer kept, in bytes
    (``GF_IDEMPOTENCY_MAX_RESULT_KB``);
    ``stop_grace`` how long SIGTERM lets the calls in flight finish (``GF_STOP_GRACE``).
    """
    from server.serve import serve

    if isinstance(stop_grace, bool) or not (math.isfinite(stop_grace) and stop_grace >= 0):
        raise ConfigError(f"GF_STOP_GRACE {stop_grace!r} must be a number of seconds >= 0")
    if advertise is not None:
        parse_advertise(advertise)  # a malformed value fails before anything starts
    host = unbracketed(host)  # "[::1]" is ::1: bind the address, bracket it in URLs
    first, last = ports
    labels.check(first)  # labels fail before anything starts
    directory.ping()  # before taking a port
    port = pick_port(host, first, last)
    instance = secrets.token_hex(8)
    # refuse a loopback address, and a name a live worker holds, before serving
    url = advertised_url(f"http://{bracketed(host)}:{port}/", advertise, redis_url)
    name = labels.check(port)
    other = directory.get(name)
    if other is not None:
        error = name_taken(name, other, url, 3 * heartbeat)
        if error is not None:
            raise error
    beating: Heartbeat | None = None
    lock = threading.Lock()
    # on the server's loop (redis.asyncio): a slow Redis holds only keyed calls
    record = idempotency.AsyncOutcomeRecord(
        redis_url if redis_url is not None else directory.url,
        ttl=idempotency_ttl,
        max_result=idempotency_max_result,
        prefix=directory.prefix,
        timeout=directory.timeout,
    )
    guard = idempotency.CallGuard(
        record,
        alive=lambda owner: _owner_url(directory, owner),
    )
    idempotency.install(guard)

    def terminate() -> None:  # SIGTERM, on the server's loop
        with lock:
            current = beating
        if current is None or current.stop_requested(stop_grace, "SIGTERM"):
            os.kill(os.getpid(), signal.SIGINT)  # the server's own stop, at once

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
            instance=instance,
        )
        # the instance, not the pid: a restart keeps its name and may keep its pid (pid 1
        # in a container), and its old claims must not look alive
        guard.owner = f"{info.name} {info.instance}"
        started = Heartbeat(directory, info, interval=heartbeat, guard=guard).start()
        with lock:
            beating = started
        # SIGTERM drains first (the server keeps SIGINT: stop at once)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
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
    """The URL of the worker ``"<name> <instance>"`` while that instance is registered
    (a restart of the worker, even with the same name and pid, is another instance)."""
    name, _, instance = owner.partition(" ")
    try:
        info = directory.get(name)
    except (StorageError, ValueError):
        return None
    except Exception:  # an owner string that is no worker name
        return None
    return info.url if info is not None and instance and info.instance == instance else None
