"""A worker's registry entry kept alive: its name claimed, its heartbeat, its commands.

:func:`claim_name` registers a worker unless a live worker of another instance holds the
name (a dead one's entry is taken over); :class:`Heartbeat` is the daemon thread that
refreshes the entry, publishes the calls in flight and takes the ``drain``/``stop``
commands addressed to this instance.

Not here: serving and the worker's life around it (:mod:`server.worker`), the
directory's layout in Redis (:mod:`globalfunc.workers`).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
import urllib.parse

from globalfunc import idempotency
from globalfunc.errors import ConfigError, StorageError
from globalfunc.workers import WorkerCommand, WorkerDirectory, WorkerInfo

__all__ = ["Heartbeat", "claim_name", "name_taken"]

log = logging.getLogger(__name__)


def _answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def name_taken(name: str, other: WorkerInfo, ours: str, ttl: float) -> ConfigError | None:
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
    error = name_taken(info.name, other, info.url, ttl)
    if error is not None:
        raise error
    return directory.register(info, ttl)


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
