"""Workers that register themselves in Redis, and the directory clients find them in.

A worker is one HTTP server (what ``gf serve`` runs) on a free port of a range
(26000-27000 by default), named after where it runs and what it offers::

    <host>_<version>_<mem>G_<gpu>G_<port>        m7_v101_30G_0G_26000

host label ``[A-Za-z0-9-]``, version label ``[A-Za-z0-9.-]``, memory and GPU memory in
whole GiB, then the port; ``_`` only separates the parts, so a name parses back
(:func:`parse_worker_name`). :func:`worker_name` sanitizes the labels it is given
(``m7.lab`` → ``m7-lab``) and refuses what cannot become one.

Redis layout, under a prefix (``gf:`` by default), apart from the storage backend's
``gf:latest:``/``gf:hist:``/``gf:blob:``/``gf:space:`` keys:

- ``gf:worker:<name>``  the worker's :class:`WorkerInfo` as JSON, with a TTL (three
  heartbeats by default). A worker is live exactly while this key exists: a worker that
  is killed disappears when its TTL runs out, one that stops deregisters at once.
- ``gf:workers``        the set of registered names; :meth:`WorkerDirectory.live` drops
  the names whose key has expired (lazy cleaning; every heartbeat re-adds its name).

:class:`Heartbeat` is the thread a worker runs to keep its entry alive; a Redis outage
costs one warning, and the entry is written again when Redis answers. Redis errors
become :class:`~globalfunc.errors.StorageUnavailable` / ``StorageError``.

Not here: serving (:mod:`server.serve`), the ``gf worker`` command (:mod:`globalfunc.cli`)
and choosing a worker per call (:mod:`globalfunc.client`). Nothing here reads settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from globalfunc.errors import ConfigError, InvalidName, StorageError
from globalfunc.storage.base import redact_url
from globalfunc.storage.redis import redis_errors

__all__ = [
    "DEFAULT_PORTS",
    "Heartbeat",
    "WorkerDirectory",
    "WorkerInfo",
    "WorkerName",
    "machine_memory_mb",
    "memory_gb",
    "parse_port_range",
    "parse_worker_name",
    "pick_port",
    "worker_name",
]

log = logging.getLogger(__name__)

DEFAULT_PORTS = (26000, 27000)

_HOST_BAD = re.compile(r"[^A-Za-z0-9-]+")
_VERSION_BAD = re.compile(r"[^A-Za-z0-9.-]+")
_NAME = re.compile(r"([A-Za-z0-9-]+)_([A-Za-z0-9.-]+)_(\d+)G_(\d+)G_(\d+)")
_LABEL_MAX = 63


# -- names ------------------------------------------------------------------------------------
class WorkerName(NamedTuple):
    """The parts of a worker name."""

    host: str
    version: str
    memory_gb: int
    gpu_gb: int
    port: int


def _label(value: str, bad: re.Pattern[str], what: str) -> str:
    label = bad.sub("-", str(value)).strip("-")
    if not label or not any(c.isalnum() for c in label):
        raise InvalidName(
            f"worker {what} {value!r} has no letters or digits to name the worker by; "
            "give a label like 'm7' or 'v101'"
        )
    if len(label) > _LABEL_MAX:
        raise InvalidName(f"worker {what} {value!r} is longer than {_LABEL_MAX} characters")
    return label


def _count(value: int, what: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidName(f"worker {what} must be a whole number >= {low}, got {value!r}")
    if high is not None and value > high:
        raise InvalidName(f"worker {what} must be at most {high}, got {value!r}")
    return value


def worker_name(host: str, version: str, memory_gb: int, gpu_gb: int, port: int) -> str:
    """``<host>_<version>_<mem>G_<gpu>G_<port>``, with the labels sanitized.

    Characters a label may not hold become ``-`` (``m7.lab`` → ``m7-lab``,
    ``0.1.0+dev`` → ``0.1.0-dev``); a label left without letters or digits, a negative
    size or a port outside 1-65535 raises :class:`~globalfunc.errors.InvalidName`.
    """
    return "_".join(
        [
            _label(host, _HOST_BAD, "host label"),
            _label(version, _VERSION_BAD, "version label"),
            f"{_count(memory_gb, 'memory (GiB)')}G",
            f"{_count(gpu_gb, 'GPU memory (GiB)')}G",
            str(_count(port, "port", 1, 65535)),
        ]
    )


def parse_worker_name(name: str) -> WorkerName:
    """The parts of a worker name; :class:`~globalfunc.errors.InvalidName` if it is not one."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None or not 1 <= int(match[5]) <= 65535:
        raise InvalidName(
            f"{name!r} is not a worker name: expected <host>_<version>_<mem>G_<gpu>G_<port>, "
            "e.g. m7_v101_30G_0G_26000"
        )
    host, version, memory, gpu, port = match.groups()
    return WorkerName(host, version, int(memory), int(gpu), int(port))


# -- what a worker offers -----------------------------------------------------------------------
def machine_memory_mb() -> int | None:
    """MiB this process may use: its cgroup's limit when one is set, else the physical RAM.

    cgroup v2 ``memory.max`` first, then v1 ``memory.limit_in_bytes`` (a container's cap);
    ``None`` when neither the cgroup nor ``sysconf`` says.
    """
    limits = []
    for path in (
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ):
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text().strip()
            if text != "max":
                limits.append(int(text) // (1 << 20))
    with contextlib.suppress(OSError, ValueError, AttributeError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20))
    # cgroup v1 reports "no limit" as a huge number: the smallest figure is the real cap
    positive = [m for m in limits if m > 0]
    return min(positive) if positive else None


def memory_gb(mb: int | None) -> int:
    """MiB as the whole GiB of a worker name: rounded, at least 1 (``None``: 0, unknown)."""
    if mb is None or mb <= 0:
        return 0
    return max(1, round(mb / 1024))


# -- ports --------------------------------------------------------------------------------------
def parse_port_range(text: str) -> tuple[int, int]:
    """``"26000-27000"`` (or one port, ``"26000"``) as ``(first, last)``, inclusive."""
    first, sep, last = str(text).strip().partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        low = high = -1
    if not (1 <= low <= high <= 65535):
        raise ConfigError(
            f"port range {text!r} must look like FIRST-LAST with 1 <= FIRST <= LAST <= 65535, "
            "e.g. 26000-27000"
        )
    return low, high


def _bindable(host: str, port: int) -> bool:
    """Whether a listening socket could bind ``host:port`` now, as tornado's bind would."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except OSError:
        return False
    seen = set()
    for family, kind, proto, _, address in infos:
        if (family, address[:2]) in seen:
            continue
        seen.add((family, address[:2]))
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError:
            return False
    return True


def pick_port(host: str, first: int, last: int) -> int:
    """The first port in ``first..last`` that ``host`` can listen on now.

    Another process may take it before the caller binds it: callers bind, and on
    "address in use" ask again from the next port. :class:`ConfigError` when every port
    in the range is taken.
    """
    for port in range(first, last + 1):
        if _bindable(host, port):
            return port
    raise ConfigError(
        f"no free port in {first}-{last} on {host or '*'}: every one is in use; widen the "
        "range (GF_WORKER_PORTS / --ports) or stop a worker"
    )


# -- one worker's entry -------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerInfo:
    """One worker as it is registered: its name, where to reach it, what it serves."""

    name: str
    host: str
    version: str
    memory_gb: int
    gpu_gb: int
    port: int
    url: str
    pid: int
    started_at: float
    last_seen: float
    root: str | None = None
    branch: str | None = None
    #: the packages it exposes (its allow-list); ``None``: every registered package
    packages: tuple[str, ...] | None = None

    @classmethod
    def new(
        cls,
        *,
        host: str,
        version: str,
        memory_gb: int,
        gpu_gb: int,
        port: int,
        url: str,
        root: str | None = None,
        branch: str | None = None,
        packages: list[str] | tuple[str, ...] | None = None,
        pid: int | None = None,
        now: float | None = None,
    ) -> WorkerInfo:
        """A worker's entry, its name built (and labels sanitized) by :func:`worker_name`."""
        name = worker_name(host, version, memory_gb, gpu_gb, port)
        parts = parse_worker_name(name)
        now = time.time() if now is None else now
        return cls(
            name=name,
            host=parts.host,
            version=parts.version,
            memory_gb=memory_gb,
            gpu_gb=gpu_gb,
            port=port,
            url=url,
            pid=os.getpid() if pid is None else pid,
            started_at=now,
            last_seen=now,
            root=root,
            branch=branch,
            packages=tuple(packages) if packages is not None else None,
        )

    def age(self, now: float | None = None) -> float:
        """Seconds since the last heartbeat (by this machine's clock)."""
        return max(0.0, (time.time() if now is None else now) - self.last_seen)

    def seen(self, now: float | None = None) -> WorkerInfo:
        """This entry with ``last_seen`` set to now."""
        return dataclasses.replace(self, last_seen=time.time() if now is None else now)

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> WorkerInfo:
        """Parse an entry; keys a newer GlobalFunc added are ignored."""
        try:
            data = orjson.loads(raw)
            known = {f.name for f in dataclasses.fields(cls)}
            data = {k: v for k, v in data.items() if k in known}
            if data.get("packages") is not None:
                data["packages"] = tuple(data["packages"])
            return cls(**data)
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise StorageError(f"a worker entry is malformed: {exc}: {raw[:200]!r}") from exc


# -- the directory ------------------------------------------------------------------------------
class WorkerDirectory:
    """The live workers, in Redis; safe to share between threads (one connection pool).

    ``url`` is a redis-py URL; ``timeout`` bounds every connect and read; ``prefix``
    namespaces the keys (``gf:`` puts them beside, never on, the storage backend's).
    ``client`` replaces the connection (tests).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        prefix: str = "gf:",
        client: Any | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.timeout = timeout
        self.prefix = prefix
        self._index = f"{prefix}workers"
        if client is not None:
            self._redis = client
            return
        try:
            self._redis = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # one quick retry repairs a pooled socket that a server restart closed
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
        except ValueError as exc:
            raise StorageError(
                f"bad Redis URL {self.url!r} for the worker directory: {exc}"
            ) from None

    def key(self, name: str) -> str:
        """The Redis key holding worker ``name``'s entry."""
        return f"{self.prefix}worker:{name}"

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return redis_errors(self.url, what, role="the worker directory")

    @staticmethod
    def _ms(ttl: float) -> int:
        if not ttl > 0:
            raise ConfigError(f"a worker entry's TTL must be positive, got {ttl!r}")
        return max(1, math.ceil(ttl * 1000))

    def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless Redis answers."""
        with self._errors("ping"):
            self._redis.ping()

    def register(self, info: WorkerInfo, ttl: float) -> WorkerInfo:
        """Write ``info`` (``last_seen`` now) to live for ``ttl`` seconds; replaces an entry
        of the same name (a worker restarted on the same port)."""
        parse_worker_name(info.name)
        info = info.seen()
        with self._errors(f"register worker {info.name}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self.key(info.name), info.to_json(), px=self._ms(ttl))
            pipe.sadd(self._index, info.name)
            pipe.execute()
        return info

    def heartbeat(self, name: str, ttl: float) -> bool:
        """Extend worker ``name``'s life by ``ttl`` seconds and set its ``last_seen``.

        ``False`` when it has no entry (it expired, was deregistered, or Redis restarted):
        the worker should :meth:`register` again.
        """
        parse_worker_name(name)
        key = self.key(name)
        with self._errors(f"heartbeat worker {name}"):
            raw = self._redis.get(key)
            if raw is None:
                return False
            info = WorkerInfo.from_json(raw).seen()
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(key, info.to_json(), px=self._ms(ttl), xx=True)
            pipe.sadd(self._index, name)
            written, _ = pipe.execute()
        return bool(written)

    def deregister(self, name: str) -> bool:
        """Remove worker ``name`` now; whether it had an entry."""
        parse_worker_name(name)
        with self._errors(f"deregister worker {name}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self.key(name))
            pipe.srem(self._index, name)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def get(self, name: str) -> WorkerInfo | None:
        """Worker ``name``'s entry while it is live."""
        parse_worker_name(name)
        with self._errors(f"read worker {name}"):
            raw = self._redis.get(self.key(name))
        return None if raw is None else WorkerInfo.from_json(raw)

    def live(self) -> list[WorkerInfo]:
        """Every worker whose entry has not expired, by name; drops expired names."""
        with self._errors("list workers"):
            names = sorted(
                n.decode() if isinstance(n, bytes) else n for n in self._redis.smembers(self._index)
            )
            values = self._redis.mget([self.key(n) for n in names]) if names else []
            gone = [n for n, v in zip(names, values, strict=True) if v is None]
            if gone:
                self._redis.srem(self._index, *gone)
        out = []
        for name, raw in zip(names, values, strict=True):
            if raw is None:
                continue
            try:
                out.append(WorkerInfo.from_json(raw))
            except StorageError as exc:
                log.warning("skipping worker %s: %s", name, exc.message)
        return out

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self._redis.close()

    def __enter__(self) -> WorkerDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the heartbeat ------------------------------------------------------------------------------
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
