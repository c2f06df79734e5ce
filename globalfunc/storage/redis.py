"""The Redis backend (redis-py with hiredis): fast reads, content-addressed history.

Layout, under a prefix (``gf:`` by default), for the key ``sp_GlobalFunc.Base_master.f``:

- ``gf:latest:<key>``  the newest version: a 77-byte header (sha256, a ``0``/``1``
  tombstone flag, a 12-digit version number), the metadata as JSON, ``\\n``, the code.
  One ``GET`` reads a whole record.
- ``gf:hist:<key>``    a list of every version (header + metadata), newest first.
- ``gf:blob:<sha256>`` the code, written once (``SET NX``) and never changed.
- ``gf:space:<tier1>`` the set of keys ever saved in a space (its name index).

Every write runs as a Lua script, so "unchanged save is a no-op" and "a new version
gets the next number" are decided atomically inside Redis: concurrent writers never
lose a version. ``put`` pipelines one script call per record inside ``MULTI``/``EXEC``,
so a batch lands entirely or not at all; the batch's latest versions are ``WATCH``ed
while their descriptions are read (a save without one keeps the key's), so a describe
landing in between makes the batch try again rather than lose the new description.
Search scans a space's latest records and
ranks them with :mod:`globalfunc.search`; there is no full-text index here.

When used as the cache of :class:`~globalfunc.storage.tiered.TieredStorage` the store
also offers :meth:`RedisStorage.cache_put` (keep a durable store's version, only if
newer than what is cached) and :meth:`RedisStorage.evict`; a cache holds ``latest``
entries only: no history, blobs or space index. This module does not read settings or retry forever:
every call is bounded by ``timeout`` and driver errors become
:class:`~globalfunc.errors.StorageError` / :class:`~globalfunc.errors.StorageUnavailable`.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from globalfunc import search
from globalfunc.errors import InvalidName, StorageError
from globalfunc.naming import parse_storage_key
from globalfunc.record import FunctionRecord
from globalfunc.storage.base import redact_url, stamp
from globalfunc.storage.redis_errors import redis_errors
from globalfunc.storage.redis_layout import (
    HEADER_SIZE,
    decode_latest,
    decode_record,
    encode_meta,
    header,
)

__all__ = ["RedisStorage", "decode_latest", "encode_meta"]

_CHUNK = 1000  # records per pipeline / MGET round trip

# KEYS: latest, hist, blob, space  ARGV: sha256, meta json, code, storage key, '1' to add
# a version even when the content is unchanged (a new description)
_PUT = """
local cur = redis.call('GETRANGE', KEYS[1], 0, 76)
local seq = 0
if cur ~= '' then
  if string.sub(cur, 1, 64) == ARGV[1] and string.sub(cur, 65, 65) == '0'
     and ARGV[5] ~= '1' then
    return 0
  end
  seq = tonumber(string.sub(cur, 66, 77))
end
seq = seq + 1
local hdr = ARGV[1] .. '0' .. string.format('%012d', seq)
redis.call('SET', KEYS[3], ARGV[3], 'NX')
redis.call('LPUSH', KEYS[2], hdr .. ARGV[2])
redis.call('SET', KEYS[1], hdr .. ARGV[2] .. '\\n' .. ARGV[3])
redis.call('SADD', KEYS[4], ARGV[4])
return seq
"""

# KEYS: latest, hist  ARGV: expected version number, tombstone meta json
_DELETE = """
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 65, 65) == '1' then return 0 end
local seq = tonumber(string.sub(cur, 66, 77))
if seq ~= tonumber(ARGV[1]) then return -1 end
local body = string.sub(cur, 78)
local nl = string.find(body, '\\n', 1, true)
local hdr = string.sub(cur, 1, 64) .. '1' .. string.format('%012d', seq + 1)
redis.call('LPUSH', KEYS[2], hdr .. ARGV[2])
redis.call('SET', KEYS[1], hdr .. ARGV[2] .. string.sub(body, nl))
return seq + 1
"""

# KEYS: latest keys  ARGV: their new values (header, meta, newline, code), same order,
# then the entries' time to live in milliseconds (0: none)
_CACHE_PUT = """
local out = {}
local ttl = tonumber(ARGV[#KEYS + 1])
for i, key in ipairs(KEYS) do
  local value = ARGV[i]
  local cur = redis.call('GETRANGE', key, 65, 76)
  if cur == '' or tonumber(cur) < tonumber(string.sub(value, 66, 77)) then
    if ttl > 0 then
      redis.call('SET', key, value, 'PX', ttl)
    else
      redis.call('SET', key, value)
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
#: attempts of a ``put`` whose watched keys changed before it wrote
_WATCH_TRIES = 50
_SCRIPT_BATCH = 250  # records per cache script call: short enough not to stall Redis


class RedisStorage:
    """``Storage`` on a Redis server; safe to share between threads (one connection pool).

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``). ``timeout`` bounds
    every connect, read and wait for a pooled connection. ``client`` replaces the
    connection (tests pass a ``fakeredis`` client).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        timeout: float = 2.0,
        pool_size: int = 32,
        prefix: str = "gf:",
        client: Any | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.timeout = timeout
        self.prefix = prefix
        #: tag put in ``record.extra["source"]`` of every record read (``"cache"`` in a tier)
        self.source_label: str | None = None
        if client is not None:
            self._redis = client
        else:
            try:
                pool = redis.BlockingConnectionPool.from_url(
                    url,
                    max_connections=pool_size,
                    timeout=timeout,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    health_check_interval=30,
                    # one quick retry repairs a pooled socket that a server restart closed
                    retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                )
            except ValueError as exc:
                raise StorageError(f"bad Redis URL {self.url!r}: {exc}") from None
            self._redis = redis.Redis(connection_pool=pool)
        self._put = self._redis.register_script(_PUT)
        self._delete = self._redis.register_script(_DELETE)
        self._cache_put = self._redis.register_script(_CACHE_PUT)

    # -- key names ---------------------------------------------------------------------
    def _latest(self, key: str) -> str:
        return f"{self.prefix}latest:{key}"

    def _hist(self, key: str) -> str:
        return f"{self.prefix}hist:{key}"

    def _blob(self, sha256: str) -> str:
        return f"{self.prefix}blob:{sha256}"

    def _space(self, tier1: str) -> str:
        return f"{self.prefix}space:{tier1}"

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return redis_errors(self.url, what)

    # -- Storage -----------------------------------------------------------------------
    def put(self, records: Sequence[FunctionRecord]) -> list[bool]:
        if not records:
            return []
        now = time.time()
        stamped = [stamp(record, now) for record in records]
        watched = builtins.list(dict.fromkeys(self._latest(r.key) for r in stamped))
        with self._errors("save records"):
            for _ in range(_WATCH_TRIES):
                with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        return self._put_watched(pipe, stamped, watched)
                    except redis.WatchError:
                        continue  # a key changed between the read and the write: again
        raise StorageError(
            f"could not save {len(records)} record(s) starting with {records[0].key}: "
            "their latest versions kept changing under concurrent writers; retry"
        )

    def _put_watched(
        self, pipe: Any, records: Sequence[FunctionRecord], watched: Sequence[str]
    ) -> list[bool]:
        """One attempt of ``put``: the latest versions are watched before their
        descriptions are read, so a describe landing between that read and the write makes
        the write fail (``WatchError``) instead of saving over the new description."""
        for i in range(0, len(watched), _CHUNK):
            pipe.watch(*watched[i : i + _CHUNK])
        described = self._descriptions([r.key for r in records], client=pipe)
        pipe.multi()
        for record in records:
            key = record.key
            given = record.extra.get("description") if record.extra else None
            force = "0"
            if not isinstance(given, str):
                if described.get(key):  # no description given: keep the key's
                    record = record.with_(extra={**record.extra, "description": described[key]})
            elif given != described.get(key, ""):
                force = "1"
                described[key] = given
            self._put(
                keys=[
                    self._latest(key),
                    self._hist(key),
                    self._blob(record.sha256),
                    self._space(record.tier1),
                ],
                args=[record.sha256, encode_meta(record), record.code, key, force],
                client=pipe,
            )
        return [bool(seq) for seq in pipe.execute()]

    def _descriptions(self, keys: Sequence[str], client: Any = None) -> dict[str, str]:
        """The description each key's latest version (live or not) carries, if any
        (read through ``client``: ``put`` passes its watching pipeline)."""
        reader = self._redis if client is None else client
        out: dict[str, str] = {}
        distinct = builtins.list(dict.fromkeys(keys))
        for i in range(0, len(distinct), _CHUNK):
            chunk = distinct[i : i + _CHUNK]
            values = reader.mget([self._latest(k) for k in chunk])
            for key, value in zip(chunk, values, strict=True):
                if value is None or b'"description"' not in value[: value.find(b"\n", HEADER_SIZE)]:
                    continue
                nl = value.index(b"\n", HEADER_SIZE)
                desc = (orjson.loads(value[HEADER_SIZE:nl]).get("extra") or {}).get("description")
                if isinstance(desc, str):
                    out[key] = desc
        return out

    def get(self, key: str, sha256: str | None = None) -> FunctionRecord | None:
        if sha256 is None:
            try:  # the hot path: no context manager
                value = self._redis.get(self._latest(key))
            except redis.RedisError:
                with self._errors(f"read {key}"):
                    raise
            if value is None or value[64:65] == b"1":
                return None
            return decode_latest(value, self.source_label)
        with self._errors(f"read {key} version {sha256[:12]}"):
            entries = self._redis.lrange(self._hist(key), 0, -1)
            for entry in entries:
                if entry[:64].decode() == sha256 and entry[64:65] == b"0":
                    code = self._redis.get(self._blob(sha256))
                    if code is None:
                        raise StorageError(f"Redis lost the code of {key} version {sha256[:12]}")
                    return decode_record(
                        entry[HEADER_SIZE:],
                        code.decode("utf-8"),
                        False,
                        int(entry[65:HEADER_SIZE]),
                        None,
                    )
        return None

    def history(self, key: str) -> list[FunctionRecord]:
        with self._errors(f"read the history of {key}"):
            entries = self._redis.lrange(self._hist(key), 0, -1)
            shas = list(dict.fromkeys(e[:64].decode() for e in entries))
            codes = self._redis.mget([self._blob(s) for s in shas]) if shas else []
        by_sha = dict(zip(shas, codes, strict=True))
        out = []
        for entry in entries:
            code = by_sha[entry[:64].decode()]
            if code is None:
                raise StorageError(f"Redis lost the code of a version of {key}")
            out.append(
                decode_record(
                    entry[HEADER_SIZE:],
                    code.decode("utf-8"),
                    entry[64:65] == b"1",
                    int(entry[65:HEADER_SIZE]),
                    self.source_label,
                )
            )
        return out

    def list(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> list[FunctionRecord]:
        return [
            decode_latest(value, self.source_label)
            for _, value in self._live(tier1, package, branch)
        ]

    def _live(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """``(key, latest value)`` of every live key of a space, in key order."""
        with self._errors(f"list space {tier1}"):
            members = sorted(m.decode() for m in self._redis.smembers(self._space(tier1)))
        keys = []
        for key in members:
            try:
                parsed = parse_storage_key(key)
            except InvalidName:
                continue  # not a key this code wrote; ignore rather than fail the listing
            if (package is None or parsed.package == package) and (
                branch is None or parsed.branch == branch
            ):
                keys.append(key)
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            with self._errors(f"list space {tier1}"):
                values = self._redis.mget([self._latest(k) for k in chunk])
            for key, value in zip(chunk, values, strict=True):
                if value is not None and value[64:65] == b"0":
                    yield key, value

    def delete(self, key: str) -> bool:
        for _ in range(100):
            latest = self.get(key)
            if latest is None:
                return False
            tombstone = latest.with_(saved_at=time.time(), deleted=True)
            with self._errors(f"delete {key}"):
                seq = self._delete(
                    keys=[self._latest(key), self._hist(key)],
                    args=[latest.extra["seq"], encode_meta(tombstone)],
                )
            if seq == 0:
                return False
            if seq > 0:
                return True
        raise StorageError(f"could not delete {key}: it kept changing under concurrent writers")

    def search(
        self,
        tier1: str,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> builtins.list[FunctionRecord]:
        """A scan of the space's latest records (no index here): a record holding none of
        the terms is passed over before its metadata is parsed; :mod:`globalfunc.search`
        ranks the rest, and only the best are decoded whole."""
        terms = search.query_terms(query)
        if not terms or limit <= 0:
            return []
        needles = [t.encode() for t in terms]
        ascii_terms = all(t.isascii() for t in terms)  # bytes.lower() folds ASCII only
        docs: builtins.list[search.SearchDoc] = []
        values: dict[str, bytes] = {}
        for key, value in self._live(tier1, package, branch):
            lowered = value[HEADER_SIZE:].lower()
            if ascii_terms and not any(n in lowered for n in needles):
                continue  # cheap rejection before parsing
            nl = value.index(b"\n", HEADER_SIZE)
            meta = orjson.loads(value[HEADER_SIZE:nl])
            extra = meta.get("extra") or {}
            description = extra.get("description") if isinstance(extra, dict) else None
            docs.append(
                search.SearchDoc(
                    key=key,
                    package=str(meta.get("package") or ""),
                    branch=str(meta.get("branch") or ""),
                    name=str(meta.get("name") or ""),
                    description=description if isinstance(description, str) else "",
                    docstring=str(meta.get("docstring") or ""),
                    signature=str(meta.get("signature") or ""),
                    code=value[nl + 1 :].decode("utf-8", "replace"),
                )
            )
            values[key] = value
        best = search.rank_docs(docs, query, limit, package=package, branch=branch)
        return [decode_latest(values[doc.key], self.source_label) for _, doc in best]

    def close(self) -> None:
        # closing a pool whose server is gone is not an error worth raising
        with contextlib.suppress(redis.RedisError):
            self._redis.close()

    # -- cache role (TieredStorage) ------------------------------------------------------
    def cache_put(
        self, records: Sequence[FunctionRecord], ttl: float | None = None
    ) -> builtins.list[bool]:
        """Cache a durable store's versions (``extra["seq"]`` set, tombstones included).

        A record replaces the cached one only when its version number is higher, so
        caches filled out of order by concurrent writers and readers still end up with
        the durable store's latest. Only the ``latest`` entries are written (a cache
        keeps no history, blobs or space index); with ``ttl`` (seconds) each entry
        written expires that long after. Returns which records were written.
        """
        ttl_ms = str(max(1, int(ttl * 1000))) if ttl else "0"
        if not records:
            return []
        out: list[bool] = []
        for i in range(0, len(records), _CHUNK * 4):
            with self._errors("fill the cache"):
                pipe = self._redis.pipeline(transaction=False)
                chunk = records[i : i + _CHUNK * 4]
                for j in range(0, len(chunk), _SCRIPT_BATCH):
                    part = chunk[j : j + _SCRIPT_BATCH]
                    self._cache_put(
                        keys=[self._latest(r.key) for r in part],
                        args=[
                            *(
                                header(r.sha256, r.deleted, int(r.extra["seq"]))
                                + encode_meta(r)
                                + b"\n"
                                + r.code.encode("utf-8")
                                for r in part
                            ),
                            ttl_ms,
                        ],
                        client=pipe,
                    )
                for flags in pipe.execute():
                    out.extend(bool(f) for f in flags)
        return out

    def cached(self, key: str) -> FunctionRecord | None:
        """The cached latest version of ``key``, tombstones included (``None`` if absent)."""
        try:  # the hot path of a tiered read: no context manager
            value = self._redis.get(self._latest(key))
        except redis.RedisError:
            with self._errors(f"read {key}"):
                raise
        return None if value is None else decode_latest(value, self.source_label)

    def evict(self, keys: Sequence[str]) -> None:
        """Drop the cached latest versions of ``keys`` (the next read refills them)."""
        if keys:
            with self._errors("evict cached records"):
                self._redis.delete(*[self._latest(k) for k in keys])

    def evict_all(self) -> None:
        """Drop every cached latest version under this store's prefix."""
        with self._errors("evict cached records"):
            batch: list[bytes] = []
            for name in self._redis.scan_iter(match=f"{self.prefix}latest:*", count=1000):
                batch.append(name)
                if len(batch) >= _CHUNK:
                    self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                self._redis.unlink(*batch)

    def ping(self) -> bool:
        """``True`` when the server answers; raises ``StorageUnavailable`` otherwise."""
        with self._errors("ping"):
            return bool(self._redis.ping())
