"""A worker's life: serve on the first free port of a range, register, beat, deregister.

``gf worker`` calls :func:`run_worker` with plain values (reading ``GF_*`` settings and
saving the functions are the CLI's job). It picks the first bindable port of the range
(:func:`globalfunc.workers.pick_port`), serves there with :func:`server.serve.serve`, and
when the server is ready registers the worker in the Redis directory and starts its
:class:`Heartbeat`; on SIGTERM/SIGINT the heartbeat stops and the entry is removed at
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

The advertised address (``--advertise``, checked by :func:`parse_advertise`) is never a
loopback one for a non-loopback bind: behind ``0.0.0.0`` the worker advertises the
machine's name when it resolves to a non-loopback address, else the local address of its
connection to Redis, else it refuses to start and asks for ``--advertise``.

Not here: the directory's layout and the names (:mod:`globalfunc.workers`), choosing a
worker per call (:mod:`globalfunc.client`).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import math
import os
import re
import secrets
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
    WorkerCommand,
    WorkerDirectory,
    WorkerInfo,
    check_url,
    machine_memory_mb,
    memory_gb,
    pick_port,
    worker_name,
)

__all__ = [
    "DEFAULT_STOP_GRACE",
    "Heartbeat",
    "WorkerLabels",
    "advertised_url",
    "claim_name",
    "default_memory_gb",
    "hostname",
    "parse_advertise",
    "run_worker",
]

log = logging.getLogger(__name__)

#: seconds a SIGTERMed worker lets its calls in flight finish (GF_STOP_GRACE)
DEFAULT_STOP_GRACE = 8.0

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ADVERTISE_HELP = (
    "give a host name or IP address, optionally with :PORT ([v6] in brackets then), or a "
    "URL http(s)://HOST[:PORT]/"
)


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


def _host_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(p) for p in name.split("."))


def parse_advertise(value: str) -> tuple[str | None, str, int | None]:
    """``(scheme, host, port)`` of an ``--advertise`` value: ``HOST``, ``HOST:PORT``,
    ``[V6]``, ``[V6]:PORT``, a bare IPv6 address, or ``http(s)://HOST[:PORT][/]`` (a URL
    is taken as it is: without a port, its scheme's). ``scheme`` and ``port`` are ``None``
    where the value gives none (the worker's own). :class:`ConfigError` names the value."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"--advertise {value!r} {why}; {_ADVERTISE_HELP}")

    if not isinstance(value, str) or not value.strip():
        raise bad("is empty")
    if "://" in value:
        try:
            check_url(value)
        except ValueError as exc:
            raise bad(f"is not a usable URL ({exc})") from None
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname or ""
        if not _host_ok(host):
            raise bad("has no valid host name or IP address")
        return parts.scheme, host, parts.port or (443 if parts.scheme == "https" else 80)
    text, port_text = value, None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise bad("is not [IPv6] or [IPv6]:PORT")
        port_text = rest[1:] if rest else None
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise bad("holds no IPv6 address in its brackets") from None
    elif value.count(":") > 1:
        host = value  # a bare IPv6 address
        if not _host_ok(host):
            raise bad("is no IPv6 address (give [V6]:PORT for one with a port)")
    else:
        host, sep, port_text = text.partition(":")
        port_text = port_text if sep else None
        if not _host_ok(host):
            raise bad("is not a host name or IP address")
    port = None
    if port_text is not None:
        port = int(port_text) if port_text.isdigit() else 0
        if not 1 <= port <= 65535:
            raise bad(f"has port {port_text!r}, not one in 1-65535")
    return None, host, port


def advertised_url(url: str, advertise: str | None, redis_url: str | None = None) -> str:
    """The URL clients use: ``url`` with its host replaced by ``advertise`` (see
    :func:`parse_advertise`); behind a wildcard address, by this machine's name, or (when
    that name resolves to a loopback address) by the local address of the route to Redis.
    A loopback address is never advertised for a non-loopback bind: :class:`ConfigError`
    asks for ``--advertise`` (or names the loopback one given)."""
    parts = urllib.parse.urlsplit(url)
    bound = parts.hostname or ""
    host: str | None = None
    scheme, port = parts.scheme, parts.port
    if advertise is not None:
        given_scheme, host, given_port = parse_advertise(advertise)
        scheme, port = given_scheme or scheme, given_port or port
        if _loopback(host) and not _loopback(bound):
            raise ConfigError(
                f"--advertise {advertise!r} is a loopback address but this worker listens on "
                f"{bound or '*'}: clients elsewhere would reach themselves, not it; advertise "
                "the name or address other machines reach this one at, or listen on "
                "127.0.0.1 (--host) for a worker only this machine uses"
            )
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
    return urllib.parse.urlunsplit(
        parts._replace(scheme=scheme, netloc=f"{_url_host(host)}:{port}", path="/")
    )


def _unbracket(host: str) -> str:
    """``host`` without the brackets of a ``[IPv6]`` literal (sockets take it bare)."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _url_host(host: str) -> str:
    """``host`` as a URL's host: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _address_in_use(exc: ConfigError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


def _answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _taken(name: str, other: WorkerInfo, ours: str, ttl: float) -> ConfigError | None:
    """The error when ``other`` (holding ``name``) is a live worker other than this one
    (advertising ``ours``); ``None`` when it is gone (its entry may be taken over).
    ``ttl``: how long an entry outlives its last heartbeat (three beats)."""
    if other.url == ours or not _answers(other.url):
        # our URL: we bound its port, so that worker no longer listens there
        log.warning(
            "worker %s: taking over the entry of a worker that no longer answers at %s (pid %s)",
            name,
            other.url,
            other.pid,
        )
        return None
    # liveness is "its URL answers": a restart whose old URL now reaches this worker's own
    # socket (--advertise changed, a proxy) cannot tell, so the message says what to do then
    return ConfigError(
        f"worker name {name} is taken by a worker that answers at {other.url} (instance "
        f"{other.instance or '?'}, pid {other.pid} on its machine): two workers of one name "
        f"would share their calls' keys; give this one another --host-label, or stop that "
        f"one first ('gf workers stop {name}'). If that worker is gone (this is its restart "
        f"and its old URL now reaches this one), its entry expires within 3 heartbeats "
        f"({ttl:g}s): start this one again after that"
    )


def claim_name(directory: WorkerDirectory, info: WorkerInfo, ttl: float) -> WorkerInfo:
    """Register ``info`` unless a live worker other than this instance holds its name
    (:class:`ConfigError` naming its URL and pid); a dead one's entry is taken over."""
    written, other = directory.claim(info, ttl)
    if other is None:
        return written
    error = _taken(info.name, other, info.url, ttl)
    if error is not None:
        raise error
    return directory.register(info, ttl)


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
    host = _unbracket(host)  # "[::1]" is ::1: bind the address, bracket it in URLs
    first, last = ports
    labels.check(first)  # labels fail before anything starts
    directory.ping()  # before taking a port
    port = pick_port(host, first, last)
    instance = secrets.token_hex(8)
    # refuse a loopback address, and a name a live worker holds, before serving
    url = advertised_url(f"http://{_url_host(host)}:{port}/", advertise, redis_url)
    name = labels.check(port)
    other = directory.get(name)
    if other is not None:
        error = _taken(name, other, url, 3 * heartbeat)
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


class Heartbeat:
    """Keeps a worker registered: a daemon thread refreshing its entry every ``interval`` s.

    :meth:`start` registers synchronously (so a Redis that is down, or a live worker of
    the same name, fails the worker's start) and then beats; the entry lives ``ttl``
    seconds (default three intervals) past each beat. When a beat fails, one warning is
    logged for the whole outage and the thread keeps trying; when the entry is gone
    (expired during an outage, Redis restarted) it is registered again. :meth:`stop` ends
    the thread and deregisters (only this instance's entry).

    With a ``guard``, each beat publishes its calls in flight, and every ``tick`` seconds
    the thread takes a command addressed to this instance (``drain``, ``stop``) and,
    while draining, stops the server (SIGINT to this process) once no call is in flight
    or the drain's deadline passed.
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
        self._lost = False
        self.guard = guard
        self.tick = min(tick, interval)
        self.drain_poll = 0.05
        self._lock = threading.Lock()
        self._deadline: float | None = None  # monotonic end of the drain; inf: none
        self._wake = threading.Event()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def instance(self) -> str:
        return self.info.instance

    def start(self) -> Heartbeat:
        self.info = claim_name(self.directory, self.info, self.ttl)
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
                instance=self.instance or None,
            ):
                self.info = claim_name(self.directory, self.info, self.ttl)
                log.info("worker %s registered again: its entry had expired", self.name)
        except ConfigError as exc:  # a live worker took the name while ours was gone
            if not self._lost:
                self._lost = True
                log.error("worker %s is not registered: %s", self.name, exc.message)
            return
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
        self._lost = False
        if self._failing:
            self._failing = False
            log.info("worker %s: heartbeat restored", self.name)

    def stop_requested(self, grace: float | None, why: str, *, escalate: bool = True) -> bool:
        """Drain for at most ``grace`` seconds (``None``: until the calls are done), then
        stop; ``True`` when the worker should stop at once instead (``grace`` 0, or a
        ``escalate``-ing stop asked while a deadline was set: a second SIGTERM). Refuses new
        calls now; the thread publishes it and stops the server. Safe from any thread."""
        guard = self.guard
        now = time.monotonic()
        with self._lock:
            again = self._deadline is not None and self._deadline != math.inf
            at_once = grace == 0 or (escalate and again and grace is not None)
            end = math.inf if grace is None else now + grace
            self._deadline = end if self._deadline is None else min(self._deadline, end)
        if guard is not None and guard.draining is None:
            guard.draining = "draining" if grace is None else "stopping"
        if at_once:
            log.info("worker %s: %s: stopping at once", self.name, why)
            return True
        log.info(
            "worker %s: %s: draining%s",
            self.name,
            why,
            "" if grace is None else f" for at most {grace:g}s",
        )
        self._wake.set()
        return False

    def _run(self) -> None:
        due = time.monotonic() + self.interval
        while True:
            with self._lock:
                draining = self._deadline is not None
            wait = (
                self.interval if self.guard is None else self.drain_poll if draining else self.tick
            )
            if self._stop.wait(wait):
                return
            if self._wake.is_set():
                self._wake.clear()
                due = time.monotonic()  # publish "draining" now
            if self.guard is not None and self._step():
                return
            if time.monotonic() >= due:
                due = time.monotonic() + self.interval
                self.beat()

    def _step(self) -> bool:
        """Take a command, and end a drain that is done; ``True`` once the worker stops."""
        assert self.guard is not None
        try:
            command = self.directory.take_command(self.name, self.instance or None)
        except StorageError:
            command = None  # beat() reports the outage
        if command is not None and self._act(command):
            os.kill(os.getpid(), signal.SIGINT)  # the server's own stop: deregister, close
            return True
        with self._lock:
            deadline = self._deadline
        if deadline is None:
            return False
        if self.guard.inflight > 0 and time.monotonic() < deadline:
            return False
        if self.guard.inflight > 0:
            log.warning(
                "worker %s: drain deadline passed with %d calls in flight: stopping",
                self.name,
                self.guard.inflight,
            )
        else:
            log.info("worker %s drained: no call in flight", self.name)
        os.kill(os.getpid(), signal.SIGINT)
        return True

    def _act(self, command: WorkerCommand) -> bool:
        """Start what ``command`` asks; ``True`` to stop at once."""
        if command.what == "drain":
            return self.stop_requested(None, "gf workers drain", escalate=False)
        return self.stop_requested(command.grace or 0.0, "gf workers stop", escalate=False)

    def stop(self, *, deregister: bool = True) -> None:
        """Stop beating and (by default) remove this instance's entry; never raises for Redis."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.interval + 2 * self.directory.timeout + 1)
        if deregister:
            try:
                self.directory.deregister(self.name, self.instance or None)
            except StorageError as exc:
                log.warning(
                    "worker %s could not deregister (its entry expires in %gs): %s",
                    self.name,
                    self.ttl,
                    exc.message,
                )
