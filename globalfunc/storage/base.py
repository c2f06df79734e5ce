"""The one storage contract every backend implements, and the URL-based opener.

Contract (checked by ``tests/contract``, unchanged for every backend):

- Keys are three-part storage keys (``sp_GlobalFunc.Base_master.to_pickle``).
- ``put(records)`` stores many records atomically where the backend can (all or none).
  A record whose sha256 equals the key's latest live version is a no-op (``False``;
  but see descriptions below); anything else appends a new version (``True``).
  Nothing is ever overwritten.
  ``saved_at`` is set by the store when the record carries 0.
- ``get(key)`` is the latest live version or ``None`` (also after ``delete``);
  ``get(key, sha256=h)`` is the newest saved version with that content, even when the
  key was deleted since.
- ``history(key)`` lists every version newest first, tombstones included.
- ``list(tier1, package=None, branch=None)`` lists the latest live version of each key.
- ``delete(key)`` appends a tombstone (history kept); ``False`` if nothing live was there.
- ``search(tier1, query, limit, *, package=None, branch=None)`` returns the live functions
  of :func:`globalfunc.search.rank` (name, description, docstring, signature, code) for
  the query, in its order: a backend may narrow the candidates with an index of its own,
  never rank them itself, so every backend gives the same results.
- A record's description lives in ``extra["description"]``. ``put`` of a record whose
  content equals the latest live version's is a no-op unless it gives a description
  different from the latest one's (then it is a new version, same content); a record
  that gives none (no ``"description"`` in ``extra``) keeps the key's latest description.
- ``close()`` releases connections. Driver exceptions never leak: they become
  :class:`~globalfunc.errors.StorageError` / ``StorageUnavailable``.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from globalfunc.errors import ConfigError
from globalfunc.record import FunctionRecord


@runtime_checkable
class Storage(Protocol):
    """Where function versions live. See the module docstring for the contract."""

    def put(self, records: Sequence[FunctionRecord]) -> list[bool]: ...

    def get(self, key: str, sha256: str | None = None) -> FunctionRecord | None: ...

    def history(self, key: str) -> list[FunctionRecord]: ...

    def list(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> builtins.list[FunctionRecord]: ...

    def delete(self, key: str) -> bool: ...

    def search(
        self,
        tier1: str,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> builtins.list[FunctionRecord]: ...

    def close(self) -> None: ...


def stamp(record: FunctionRecord, now: float | None = None) -> FunctionRecord:
    """Give a record its ``saved_at`` if it has none."""
    if record.saved_at:
        return record
    return record.with_(saved_at=now if now is not None else time.time())


_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(query: str) -> builtins.list[str]:
    """Split a free-text search query into lower-case word terms."""
    return [t.lower() for t in _WORD.findall(query or "")]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for logs and error messages: the
    one in the netloc (``redis://:pw@host``) and a ``password=`` query parameter."""
    url = re.sub(r"(?<=://)([^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#|]*", r"\1***", url)


def combine_urls(storage_url: str, cache_url: str | None = None) -> str:
    """One storage URL from ``GF_STORAGE_URL`` and ``GF_CACHE_URL``.

    Without a cache URL that is the storage URL itself; with one it is the tiered form
    ``tiered+<cache url>|<storage url>`` (Redis over the durable store).
    """
    if not storage_url:
        raise ConfigError("storage URL is empty; expected e.g. mongodb://host:27017/globalfunc")
    if not cache_url:
        return storage_url
    if storage_url.startswith("tiered+"):
        raise ConfigError(
            f"storage URL {redact_url(storage_url)!r} is already tiered; "
            "do not set a cache URL as well"
        )
    if cache_url.split("://", 1)[0] not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"cache URL {redact_url(cache_url)!r} must be a Redis URL (redis://host:6379/0)"
        )
    return f"tiered+{cache_url}|{storage_url}"


DEFAULT_CACHE_TTL = 60.0  # seconds a cached entry may be served (GF_CACHE_TTL)


def open_storage(
    url: str,
    *,
    timeout: float = 2.0,
    cache_ttl: float | None = DEFAULT_CACHE_TTL,
    cache_timeout: float | None = None,
) -> Storage:
    """Open a backend by URL scheme; drivers are imported lazily.

    - ``sqlite:///abs/registry.db``, ``sqlite://relative.db`` or a bare path: the embedded
      default (``sqlite://:memory:`` for a throw-away store)
    - ``redis://host:port/db``, ``mongodb://host:port/db``: team backends
    - ``tiered+redis://...|mongodb://...`` (the cache URL, ``|``, the durable URL):
      Redis over MongoDB, the seed's RedisOrMongo. ``cache_ttl`` bounds how long a
      cached entry is served (seconds; ``None``: no bound); ``cache_timeout`` bounds each
      cache call (default: ``timeout``), so a stalled cache delays a save at most that.
    """
    if not url:
        raise ConfigError("storage URL is empty; expected e.g. sqlite:///path/registry.db")
    if "://" not in url or url.startswith("sqlite://"):
        from globalfunc.storage.sqlite import SqliteStorage

        # sqlite:///abs/path.db -> /abs/path.db; sqlite://rel.db -> rel.db
        path = url[len("sqlite://") :] if url.startswith("sqlite://") else url
        return SqliteStorage(path or ":memory:", timeout=timeout)
    scheme = url.split("://", 1)[0]
    if scheme.startswith("tiered+"):
        cache_url, sep, durable_url = url[len("tiered+") :].partition("|")
        if not sep:
            raise ConfigError(
                f"tiered storage URL {redact_url(url)!r} needs 'tiered+<cache url>|<durable url>'"
            )
        from globalfunc.storage.tiered import TieredStorage

        return TieredStorage(
            open_storage(cache_url, timeout=cache_timeout or timeout),
            open_storage(durable_url, timeout=timeout),
            ttl=cache_ttl,
        )
    if scheme in ("redis", "rediss", "unix"):
        from globalfunc.storage.redis import RedisStorage

        return RedisStorage(url, timeout=timeout)
    if scheme in ("mongodb", "mongodb+srv"):
        from globalfunc.storage.mongo import MongoStorage

        return MongoStorage(url, timeout=timeout)
    raise ConfigError(
        f"unknown storage URL scheme {scheme!r} in {redact_url(url)!r}; "
        "use sqlite:///path, redis://, mongodb:// or tiered+redis://...|mongodb://..."
    )
