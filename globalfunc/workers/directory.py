"""The worker directory in Redis: who is live, where, and what each one serves.

Redis layout, under a prefix (``gf:`` by default), apart from the storage backend's
``gf:latest:``/``gf:hist:``/``gf:blob:``/``gf:space:`` keys:

- ``gf:worker:<name>``  the worker's :class:`WorkerInfo` as JSON, with a TTL (three
  heartbeats by default). A worker is live exactly while this key exists: a worker that
  is killed disappears when its TTL runs out, one that stops deregisters at once.
- ``gf:workers``        the set of registered names; :meth:`WorkerDirectory.live` drops
  the names whose key has expired (lazy cleaning; every heartbeat re-adds its name).
- ``gf:control:<name>`` a command for the worker (``drain`` or ``stop``), set by
  ``gf workers drain|stop`` and taken by the worker's heartbeat thread within a second.

Each heartbeat writes the worker's calls in flight (``inflight``) and whether it is
draining, for the clients' least-outstanding-requests choice.

Redis errors become :class:`~globalfunc.errors.StorageUnavailable` / ``StorageError``.

Not here: the heartbeat thread and the worker's life (``server.worker``), choosing a
worker per call (:mod:`globalfunc.client`). Nothing here reads settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from globalfunc.errors import ConfigError, StorageError
from globalfunc.storage.base import redact_url
from globalfunc.storage.redis import redis_errors
from globalfunc.workers.name import parse_worker_name, worker_name

__all__ = ["WorkerDirectory", "WorkerInfo"]

log = logging.getLogger(__name__)


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
    #: its calls in flight at the last heartbeat
    inflight: int = 0
    #: it takes no new calls (``gf workers drain``) and leaves once they are done
    draining: bool = False

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

    @property
    def client(self) -> Any:
        """The redis-py client (shared with the worker's outcome record)."""
        return self._redis

    def heartbeat(
        self, name: str, ttl: float, *, inflight: int | None = None, draining: bool | None = None
    ) -> bool:
        """Extend worker ``name``'s life by ``ttl`` seconds and set its ``last_seen``
        (and its ``inflight`` count and ``draining`` flag, when given).

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
            if inflight is not None:
                info = dataclasses.replace(info, inflight=inflight)
            if draining is not None:
                info = dataclasses.replace(info, draining=draining)
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

    def command(self, name: str, what: str, ttl: float = 60.0) -> None:
        """Ask worker ``name`` to ``drain`` or ``stop`` (it takes the command within a second;
        one it never takes expires after ``ttl`` seconds)."""
        parse_worker_name(name)
        if what not in ("drain", "stop"):
            raise ConfigError(f"worker command {what!r} is not one of drain, stop")
        with self._errors(f"send {what} to worker {name}"):
            self._redis.set(f"{self.prefix}control:{name}", what, px=self._ms(ttl))

    def take_command(self, name: str) -> str | None:
        """The command waiting for worker ``name``, removed as it is read."""
        key = f"{self.prefix}control:{name}"
        with self._errors(f"read commands of worker {name}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(key)
            pipe.delete(key)
            raw, _ = pipe.execute()
        return None if raw is None else raw.decode()

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
