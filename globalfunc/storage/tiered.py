"""The tiered store (the user's "RedisOrMongo"): a fast cache over a durable store.

Writes go to the durable store first and then to the cache; a write the durable store
refuses raises (``StorageUnavailable`` when it is down) and never reaches the cache, so
nothing exists in the cache alone. Latest-version reads try the cache, fall back to the
durable store, and refill the cache. History, listing and search always ask the durable
store, because the cache keeps latest versions only.

The cache keeps versions in the durable store's order: the durable store numbers each
version (``extra["seq"]``) and the cache only ever replaces a record by a higher number,
so concurrent writers and read-refills cannot leave an older version cached. Deletes
cache the tombstone for the same reason.

Staleness is bounded by ``ttl`` (seconds, ``GF_CACHE_TTL``, 60 by default): every cache
entry expires that long after it was filled, and the next read after that refills it
from the durable store. That bound holds across processes and restarts, which matters
when a write reaches the durable store but not the cache (the cache was paused or
unreachable): no process can then know that the cached entry is old, so it is served
until it expires, never longer. Within a process the repair is quicker: the next write
of a key replaces its cached entry, and keys written while the cache was failing are
evicted as soon as it answers again.

When the cache fails the store keeps working through the durable store: every cache
call is bounded by the cache's own timeout (a paused Redis costs a save at most that
long, and the save still succeeds durably), one warning is logged per outage, the cache
is not asked again for ``retry_after`` seconds at a time, and the keys written meanwhile
are remembered for the eviction above. Every record ``get`` returns says where it came
from in ``record.extra["source"]`` (``"cache"`` or ``"durable"``).

This module composes two stores; it opens no connections and reads no settings.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from globalfunc.errors import ConfigError, StorageError, StorageUnavailable
from globalfunc.record import FunctionRecord
from globalfunc.storage.base import Storage, stamp

__all__ = ["TieredStorage"]

log = logging.getLogger(__name__)

#: after this many keys written during a cache outage, the whole cache is suspect
_MAX_DIRTY = 100_000


def _tag(record: FunctionRecord | None, source: str) -> FunctionRecord | None:
    if record is None:
        return None
    return record.with_(extra={**record.extra, "source": source})


class TieredStorage:
    """``Storage`` over a cache (a :class:`~globalfunc.storage.redis.RedisStorage`) and a
    durable store (a :class:`~globalfunc.storage.mongo.MongoStorage`, or any ``Storage``).

    With a durable store that lacks ``save``/``remove`` (version numbers), writes evict
    the cached entry instead of replacing it.
    """

    def __init__(
        self, cache: Any, durable: Storage, *, retry_after: float = 1.0, ttl: float | None = 60.0
    ) -> None:
        for method in ("cache_put", "cached", "evict", "ping"):
            if not hasattr(cache, method):
                raise ConfigError(
                    f"{type(cache).__name__} cannot be a cache (no {method}()); use a Redis URL"
                )
        self.cache = cache
        self.durable = durable
        self.retry_after = retry_after
        if ttl is not None and ttl <= 0:
            raise ConfigError(f"cache TTL must be a positive number of seconds, got {ttl!r}")
        self.ttl = ttl
        cache.source_label = "cache"
        self._lock = threading.Lock()
        self._down_until: float | None = None  # set while the cache is considered down
        self._dirty: set[str] = set()
        self._flush_all = False

    # -- cache health --------------------------------------------------------------------
    @property
    def cache_down(self) -> bool:
        """Whether the cache is currently bypassed after a failure."""
        return self._down_until is not None

    def _cache_usable(self) -> bool:
        if self._down_until is None:  # the common case, read without the lock
            return True
        with self._lock:
            if self._down_until is None:
                return True
            if time.monotonic() < self._down_until:
                return False
            self._down_until = time.monotonic() + self.retry_after  # one prober at a time
        try:
            self.cache.ping()
            self._recover()
        except StorageError:
            return False
        return True

    def _recover(self) -> None:
        with self._lock:
            dirty, self._dirty = list(self._dirty), set()
            flush_all, self._flush_all = self._flush_all, False
        if flush_all:
            self.cache.evict_all()
        else:
            self.cache.evict(dirty)
        with self._lock:
            self._down_until = None
        log.info(
            "storage cache %s is back; evicted %s possibly stale record(s), reads refill it",
            getattr(self.cache, "url", "?"),
            "all" if flush_all else len(dirty),
        )

    def _cache_failed(self, exc: StorageError, keys: Sequence[str] = ()) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + self.retry_after
            self._mark_dirty(keys)
        if first:
            log.warning(
                "storage cache failed (%s); serving from the durable store and retrying "
                "the cache every %.1fs",
                exc,
                self.retry_after,
            )

    def _mark_dirty(self, keys: Sequence[str]) -> None:
        self._dirty.update(keys)
        if len(self._dirty) > _MAX_DIRTY:
            self._dirty.clear()
            self._flush_all = True

    def _fill(self, records: Sequence[FunctionRecord]) -> None:
        """Write durable versions into the cache; on failure remember them as dirty."""
        keys = [r.key for r in records]
        if not self._cache_usable():
            with self._lock:
                self._mark_dirty(keys)
            return
        try:
            if all("seq" in r.extra for r in records):
                self.cache.cache_put(records, ttl=self.ttl)
            else:
                self.cache.evict(keys)
        except StorageError as exc:
            self._cache_failed(exc, keys)

    # -- Storage -------------------------------------------------------------------------
    def put(self, records: Sequence[FunctionRecord]) -> list[bool]:
        if not records:
            return []
        now = time.time()
        stamped = [stamp(r, now) for r in records]
        save = getattr(self.durable, "save", None)
        if save is None:
            flags = self.durable.put(stamped)
            # no durable version number to order cache entries by: evict the written keys
            # (the next read refills from the durable store, description included)
            self._evict([r.key for r, f in zip(stamped, flags, strict=True) if f])
            return flags
        stored: list[FunctionRecord | None] = save(stamped)
        self._fill([s for s in stored if s is not None])
        return [s is not None for s in stored]

    def get(self, key: str, sha256: str | None = None) -> FunctionRecord | None:
        if sha256 is not None:
            return self._get_version(key, sha256)
        if self._cache_usable():
            try:
                cached = self.cache.cached(key)
            except StorageError as exc:
                self._cache_failed(exc)
            else:
                if cached is not None:
                    return None if cached.deleted else cached
        record = self.durable.get(key)
        if record is not None and "seq" in record.extra:
            self._fill([record])
        return _tag(record, "durable")

    def _get_version(self, key: str, sha256: str) -> FunctionRecord | None:
        try:
            return _tag(self.durable.get(key, sha256=sha256), "durable")
        except StorageUnavailable:
            if not self._cache_usable():
                raise
            try:
                cached = self.cache.cached(key)
            except StorageError:
                cached = None
            if cached is not None and cached.sha256 == sha256 and not cached.deleted:
                return cached
            raise

    def history(self, key: str) -> list[FunctionRecord]:
        return self.durable.history(key)

    def list(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> list[FunctionRecord]:
        return self.durable.list(tier1, package=package, branch=branch)

    def delete(self, key: str) -> bool:
        remove = getattr(self.durable, "remove", None)
        if remove is None:
            deleted = self.durable.delete(key)
            if deleted:
                self._evict([key])
            return deleted
        tombstone: FunctionRecord | None = remove(key)
        if tombstone is not None:
            self._fill([tombstone])
        return tombstone is not None

    def _evict(self, keys: Sequence[str]) -> None:
        if not self._cache_usable():
            with self._lock:
                self._mark_dirty(keys)
            return
        try:
            self.cache.evict(keys)
        except StorageError as exc:
            self._cache_failed(exc, keys)

    def search(
        self,
        tier1: str,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> builtins.list[FunctionRecord]:
        return self.durable.search(tier1, query, limit, package=package, branch=branch)

    def close(self) -> None:
        try:
            self.cache.close()
        finally:
            self.durable.close()
