"""The worker directory in Redis: who is live, where, and what each one serves.

Redis layout, under a prefix (``gf:`` by default), apart from the storage backend's
``gf:latest:``/``gf:hist:``/``gf:blob:``/``gf:space:`` keys:

- ``gf:worker:<name>``  the worker's :class:`WorkerInfo` as JSON, with a TTL (three
  heartbeats by default). A worker is live exactly while this key exists: a worker that
  is killed disappears when its TTL runs out, one that stops deregisters at once.
- ``gf:workers``        the set of registered names; :meth:`WorkerDirectory.live` drops
  the names whose key has expired (lazy cleaning; every heartbeat re-adds its name).
- ``gf:control:<name>`` a command for one worker *instance*: JSON ``{"what": "drain" |
  "stop", "instance": ..., "grace": seconds | null}``, set by ``gf workers drain|stop``
  and taken (read and deleted) by the worker's heartbeat thread within a second. Each
  start of a worker has its own random ``instance`` id (in its entry); a command addressed
  to another instance (an earlier worker of the same name) is deleted unread, so a stop
  never outlives the worker it was meant for.

Each heartbeat writes the worker's calls in flight (``inflight``) and whether it is
draining, for the clients' least-outstanding-requests choice. A worker writes, refreshes
and deletes only an entry that holds its own ``instance``.

Readers do not trust what they read: :meth:`WorkerInfo.from_json` checks every field an
entry holds (the name matches its key, the URL is http(s) with a host, ``inflight`` is a
whole number in 0-1,000,000, ...); :meth:`WorkerDirectory.live` skips a bad entry with one
warning. That bounds the damage of a bad entry, not of a hostile Redis: whoever can write
to this Redis can still register a well-formed worker of their own (see the README's
trust section).

Redis errors become :class:`~globalfunc.errors.StorageUnavailable` / ``StorageError``.

Not here: an entry's fields and their checks (:mod:`globalfunc.workers.entry`), the
heartbeat thread and the worker's life (``server.heartbeat``, ``server.worker``),
choosing a worker per call (:mod:`globalfunc.client`). Nothing here reads settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from globalfunc.errors import ConfigError, StorageError
from globalfunc.storage.base import redact_url
from globalfunc.storage.redis_errors import redis_errors
from globalfunc.workers.entry import WorkerCommand, WorkerInfo
from globalfunc.workers.name import parse_worker_name

__all__ = ["WorkerDirectory"]

log = logging.getLogger(__name__)

# delete an entry (and its index name) only while it holds this instance
_DEREGISTER = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, entry = pcall(cjson.decode, raw)
if ok and type(entry) == 'table' and entry['instance'] ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# write an entry unless another instance holds the name: nil when written, else its entry
_CLAIM = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, entry = pcall(cjson.decode, raw)
  if ok and type(entry) == 'table' and entry['instance'] ~= ARGV[3] then return raw end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
return false
"""


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
        self._warned: set[tuple[str, bytes]] = set()
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

    def control_key(self, name: str) -> str:
        """The Redis key holding the command waiting for worker ``name``."""
        return f"{self.prefix}control:{name}"

    def register(self, info: WorkerInfo, ttl: float) -> WorkerInfo:
        """Write ``info`` (``last_seen`` now) to live for ``ttl`` seconds; replaces an entry
        of the same name (use :meth:`claim` unless the other holder is known to be gone)."""
        parse_worker_name(info.name)
        info = info.seen()
        with self._errors(f"register worker {info.name}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self.key(info.name), info.to_json(), px=self._ms(ttl))
            pipe.sadd(self._index, info.name)
            pipe.execute()
        return info

    def claim(self, info: WorkerInfo, ttl: float) -> tuple[WorkerInfo, WorkerInfo | None]:
        """Register ``info`` unless another instance's entry holds its name (atomically):
        ``(info as written, None)``, or ``(info, the other's entry)`` with nothing written.
        A malformed entry in the way is overwritten."""
        parse_worker_name(info.name)
        info = info.seen()
        with self._errors(f"register worker {info.name}"):
            raw = self._redis.eval(
                _CLAIM,
                2,
                self.key(info.name),
                self._index,
                info.to_json(),
                self._ms(ttl),
                info.instance,
                info.name,
            )
        if raw is None:
            return info, None
        try:
            return info, WorkerInfo.from_json(raw, info.name)
        except StorageError:
            return self.register(info, ttl), None

    @property
    def client(self) -> Any:
        """The redis-py client (shared with the worker's outcome record)."""
        return self._redis

    def heartbeat(
        self,
        name: str,
        ttl: float,
        *,
        inflight: int | None = None,
        draining: bool | None = None,
        instance: str | None = None,
    ) -> bool:
        """Extend worker ``name``'s life by ``ttl`` seconds and set its ``last_seen``
        (and its ``inflight`` count and ``draining`` flag, when given).

        ``False`` when it has no entry (it expired, was deregistered, or Redis restarted)
        or, given ``instance``, when the entry is another instance's (left untouched): the
        worker should register again (:meth:`claim`).
        """
        parse_worker_name(name)
        key = self.key(name)
        with self._errors(f"heartbeat worker {name}"):
            raw = self._redis.get(key)
            if raw is None:
                return False
            try:
                info = WorkerInfo.from_json(raw, name).seen()
            except StorageError:
                return False
            if instance is not None and info.instance != instance:
                return False
            if inflight is not None:
                info = dataclasses.replace(info, inflight=inflight)
            if draining is not None:
                info = dataclasses.replace(info, draining=draining)
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(key, info.to_json(), px=self._ms(ttl), xx=True)
            pipe.sadd(self._index, name)
            written, _ = pipe.execute()
        return bool(written)

    def deregister(self, name: str, instance: str | None = None) -> bool:
        """Remove worker ``name`` now (with ``instance``: only while the entry is that
        instance's), and the command waiting for it; whether an entry was removed."""
        parse_worker_name(name)
        with self._errors(f"deregister worker {name}"):
            if instance is not None:
                done = self._redis.eval(
                    _DEREGISTER,
                    3,
                    self.key(name),
                    self._index,
                    self.control_key(name),
                    instance,
                    name,
                )
                return bool(done == 1)
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self.key(name))
            pipe.srem(self._index, name)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def get(self, name: str) -> WorkerInfo | None:
        """Worker ``name``'s entry while it is live; :class:`StorageError` for a bad one."""
        parse_worker_name(name)
        with self._errors(f"read worker {name}"):
            raw = self._redis.get(self.key(name))
        return None if raw is None else WorkerInfo.from_json(raw, name)

    def command(
        self,
        name: str,
        what: str,
        ttl: float = 60.0,
        *,
        instance: str,
        grace: float | None = None,
    ) -> None:
        """Ask instance ``instance`` of worker ``name`` to ``drain`` or ``stop`` (within
        ``grace`` seconds; ``None``: at once). It takes the command within a second; one it
        never takes expires after ``ttl`` seconds, and any other instance deletes it unread."""
        parse_worker_name(name)
        if what not in ("drain", "stop"):
            raise ConfigError(f"worker command {what!r} is not one of drain, stop")
        command = WorkerCommand(what, instance, grace)
        with self._errors(f"send {what} to worker {name}"):
            self._redis.set(self.control_key(name), command.to_json(), px=self._ms(ttl))

    def take_command(self, name: str, instance: str | None = None) -> WorkerCommand | None:
        """The command waiting for instance ``instance`` of worker ``name``, deleted as it
        is read; a command for another instance (or malformed) is deleted and ``None``."""
        key = self.control_key(name)
        with self._errors(f"read commands of worker {name}"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(key)
            pipe.delete(key)
            raw, _ = pipe.execute()
        if raw is None:
            return None
        command = WorkerCommand.from_json(raw)
        if command is None or (instance is not None and command.instance != instance):
            log.warning(
                "worker %s: ignored a command addressed to another instance: %r",
                name,
                raw[:200],
            )
            return None
        return command

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
                out.append(WorkerInfo.from_json(raw, name))
            except StorageError as exc:
                if (name, raw) not in self._warned:  # one warning per bad entry
                    if len(self._warned) >= 1000:
                        self._warned.clear()
                    self._warned.add((name, raw))
                    log.warning("skipping worker %s: %s", name, exc.message)
        return out

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self._redis.close()

    def __enter__(self) -> WorkerDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
