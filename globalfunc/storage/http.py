"""A storage backend that speaks to a GlobalFunc server's registry endpoints over HTTP.

``http://host:port`` (or ``https://``, with an optional path prefix) names a ``gf serve``
whose ``/registry/...`` endpoints (:mod:`server.http.registry_api`) hold the records: a
notebook saves and fetches through it without any database settings or credentials
(the seed's ``redis_agent_host``). It implements the :class:`~globalfunc.storage.base.Storage`
contract and passes the same contract suite as every other backend, against a live server.

The bearer token is the URL's password (``http://:TOKEN@host:8000``) or the ``token``
argument (the edges pass ``GF_TOKEN``/``GF_TOKEN_FILE``); it is sent only in the
``Authorization`` header and never appears in a message or a log line (the URL is shown
without its user information).

Every operation is bounded by ``timeout`` (``GF_STORAGE_TIMEOUT`` for ``gf``,
``storage_timeout=`` for ``GFBase``) as a whole (each request of a save at least
:data:`SAVE_SECONDS_PER_RECORD` a record it carries): a server
that cannot be reached (refused, restarting) is tried again until then, and then the
operation raises :class:`~globalfunc.errors.StorageUnavailable`. A request whose
connection died after it was sent is sent again only when repeating it cannot change the
outcome: reads, and saves whose keys are all different (a save is content-addressed, so a
version that did land is a no-op the second time); a delete is not resent. A server
answer is translated at this boundary: 401 :class:`~globalfunc.errors.Unauthorized`, 403
``Forbidden``, 4xx the server's error class, 503 ``StorageUnavailable``, other failures
:class:`~globalfunc.errors.StorageError`. Records read are checked against their sha256.

What it does not do: decide anything about names, hashes or versions (the server does,
re-scanning every posted source), cache (put a Redis in front with ``tiered+``), or keep
one save of more than :data:`BATCH_RECORDS` records / :data:`BATCH_BYTES` bytes of code
atomic: bigger saves go as several requests, each all-or-nothing on the server.
"""

from __future__ import annotations

import builtins
import logging
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import orjson
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError

from globalfunc.errors import (
    ConfigError,
    FunctionNotFound,
    GlobalFuncError,
    InvalidName,
    StorageError,
    StorageUnavailable,
    error_from_dict,
)
from globalfunc.fingerprint import fingerprint_of
from globalfunc.naming import check_branch, check_tier1, parse_package, parse_storage_key
from globalfunc.record import FunctionInfo, FunctionRecord
from globalfunc.storage.base import query_terms

__all__ = ["BATCH_BYTES", "BATCH_RECORDS", "HttpStorage"]

log = logging.getLogger(__name__)

BATCH_RECORDS = 64
"""Most records one save request carries. The server scans every posted file (about 10 ms
a record on a busy 2-core machine; a 768-record request took it 7.2 s), so a batch stays
well within the default 2 s timeout; the server's own limit (``MAX_BATCH``) is 1000."""
BATCH_BYTES = 512 << 10
"""Most bytes of code one save request carries, well under the server's ``GF_MAX_BODY``."""
SAVE_SECONDS_PER_RECORD = 0.05
"""A save request waits at least this long per record it carries (or ``timeout``, when
longer): a slow server scanning a full batch is not reported as down."""
MAX_SEARCH = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_COMMIT = re.compile(r"[0-9A-Za-z]{1,64}\Z")
_MODIFIED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
_RETRY_PAUSE = 0.1  # seconds between tries while the server cannot be reached


class HttpStorage:
    """Records kept by a GlobalFunc server, reached over HTTP. See the module docstring."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 2.0) -> None:
        if timeout <= 0:
            raise ConfigError(f"storage timeout must be positive, got {timeout}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"storage URL {self._shown(url)!r} must be http://host:port or https://host:port"
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"storage URL {self._shown(url)!r} has an invalid port") from None
        if parts.query or parts.fragment:
            raise ConfigError(
                f"storage URL {self._shown(url)!r} takes no query or fragment; "
                "expected http://host:port[/prefix]"
            )
        if "@" in parts.netloc:
            if parts.password is None:
                raise ConfigError(
                    f"storage URL {self._shown(url)!r} has user information but no password; "
                    "put the token as the password (http://:TOKEN@host:port) so it is never shown"
                )
            token = unquote(parts.password)
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        self.base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
        self.url = self.base + "/"  # shown in messages: no user information
        self.timeout = timeout
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "globalfunc-storage",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)

    @staticmethod
    def _shown(url: str) -> str:
        """``url`` without its user information, for messages."""
        return re.sub(r"(?<=://)[^/@]*@", "", url)

    def __repr__(self) -> str:
        return f"HttpStorage({self.url!r})"

    # -- the contract ------------------------------------------------------------------------
    def put(self, records: Sequence[FunctionRecord]) -> list[bool]:
        added: list[bool] = []
        for batch in _batches(records):
            items = [_item(r) for r in batch]
            body = orjson.dumps({"records": items})
            keys = [r.key for r in batch]
            answer = self._request(
                "POST",
                "/registry/save",
                body=body,
                resend=len(set(keys)) == len(keys),
                timeout=max(self.timeout, SAVE_SECONDS_PER_RECORD * len(batch)),
            )
            results = answer.get("results")
            if not isinstance(results, list) or len(results) != len(batch):
                raise StorageError(
                    f"{self.url} answered a save of {len(batch)} records with "
                    f"{len(results) if isinstance(results, list) else 'no'} results"
                )
            for record, result in zip(batch, results, strict=True):
                if not isinstance(result, dict) or result.get("sha256") != record.sha256:
                    raise StorageError(
                        f"{self.url} saved {record.key} under another hash than "
                        f"{record.sha256[:12]}; check the server's version"
                    )
                added.append(bool(result.get("added")))
        return added

    def get(self, key: str, sha256: str | None = None) -> FunctionRecord | None:
        query = _key_query(key)
        if sha256 is not None:
            if not _SHA256.match(sha256):
                return None  # no stored version has that hash
            query["sha256"] = sha256
        try:
            answer = self._request("GET", "/registry/record", query)
        except FunctionNotFound:
            return None
        return _record(answer.get("record"), self.url)

    def history(self, key: str) -> list[FunctionRecord]:
        return self._records("/registry/history", _key_query(key))

    def list(
        self, tier1: str, package: str | None = None, branch: str | None = None
    ) -> builtins.list[FunctionRecord]:
        query = {"tier1": tier1}
        try:
            check_tier1(tier1)
            if package is not None:
                query["package"] = parse_package(package)
            if branch is not None:
                query["branch"] = check_branch(branch)
        except InvalidName:
            return []  # no key holds such a name
        return self._records("/registry/list", query)

    def delete(self, key: str) -> bool:
        answer = self._request("DELETE", "/registry/record", _key_query(key), resend=False)
        return answer.get("deleted") is True

    def search(
        self,
        tier1: str,
        query: str,
        limit: int = 20,
        *,
        package: str | None = None,
        branch: str | None = None,
    ) -> builtins.list[FunctionRecord]:
        if not query_terms(query) or limit < 1:
            return []
        params = {"tier1": tier1, "q": query, "limit": str(min(limit, MAX_SEARCH))}
        try:
            check_tier1(tier1)
            if package is not None:
                params["package"] = parse_package(package)
            if branch is not None:
                params["branch"] = check_branch(branch)
        except InvalidName:
            return []
        return self._records("/registry/search", params)

    def same_logic(
        self, tier1: str, items: Sequence[FunctionInfo | FunctionRecord]
    ) -> dict[str, builtins.list[FunctionRecord]]:
        """For each call name (``Base.f``) of ``items``: the other live functions with its
        logic (its fingerprint), as the server's index knows them: one small request,
        never a listing of the space (see :meth:`Registry.duplicates_of`)."""
        out: dict[str, builtins.list[FunctionRecord]] = {}
        for start in range(0, len(items), BATCH_RECORDS):
            chunk = items[start : start + BATCH_RECORDS]
            body = orjson.dumps(
                {
                    "tier1": tier1,
                    "items": [
                        {"package": i.package, "name": i.name, "fingerprint": fingerprint_of(i)}
                        for i in chunk
                    ],
                }
            )
            found = self._request("POST", "/registry/duplicates", body=body).get("duplicates")
            if not isinstance(found, dict):
                raise StorageError(f"{self.url} answered /registry/duplicates without a map")
            for call, records in found.items():
                if isinstance(records, builtins.list):
                    out[str(call)] = [_record(r, self.url) for r in records]
        return out

    def close(self) -> None:
        self._pool.clear()

    # -- HTTP ---------------------------------------------------------------------------------
    def _records(self, path: str, query: dict[str, str]) -> builtins.list[FunctionRecord]:
        records = self._request("GET", path, query).get("records")
        if not isinstance(records, builtins.list):
            raise StorageError(f"{self.url} answered {path} without a list of records")
        return [_record(r, self.url) for r in records]

    def _request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        *,
        body: bytes | None = None,
        resend: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API call within ``timeout`` (default: the storage's); the JSON object
        answered, or a translated error."""
        url = self.base + path + ("?" + urlencode(query) if query else "")
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StorageUnavailable(
                    f"GlobalFunc registry at {self.url} did not answer {method} {path} within "
                    f"{budget:g}s (the storage timeout: GF_STORAGE_TIMEOUT for gf and gf serve, "
                    "storage_timeout= for GFBase); is gf serve running there?",
                    url=self.url,
                )
            try:
                response = self._pool.request(
                    method,
                    url,
                    body=body,
                    headers=self._headers,
                    timeout=urllib3.Timeout(connect=left, read=left),
                    retries=False,
                    redirect=False,
                )
            except NewConnectionError:  # refused, unreachable: it never got the request
                time.sleep(min(_RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
                continue
            except Urllib3Error as exc:  # timed out, or the connection died after sending
                if resend and deadline - time.monotonic() > 0:
                    log.debug("%s %s%s failed (%s); sending again", method, self.url, path, exc)
                    time.sleep(min(_RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
                    continue
                raise StorageUnavailable(
                    f"GlobalFunc registry at {self.url} did not answer {method} {path}: "
                    f"{type(exc).__name__}; it may be down or restarting (a save can be "
                    "sent again: an unchanged version is a no-op)",
                    url=self.url,
                ) from None
            return self._answer(response, method, path)

    def _answer(self, response: Any, method: str, path: str) -> dict[str, Any]:
        status = response.status
        try:
            data = orjson.loads(response.data)
        except orjson.JSONDecodeError:
            data = None
        if status == 200 and isinstance(data, dict):
            return data
        if not isinstance(data, dict) or "error" not in data:
            raise StorageError(
                f"{self.url} answered {method} {path} with HTTP {status} and no GlobalFunc "
                "error body; is it a GlobalFunc server (gf serve)?",
                status=status,
            )
        err = error_from_dict(data, status)
        if status == 404 and not isinstance(err, FunctionNotFound):
            raise StorageError(
                f"{self.url} has no registry endpoint {path} ({err.message}); "
                "serve it with a GlobalFunc version that has /registry/",
                status=status,
            )
        if status == 503 and not isinstance(err, StorageUnavailable):
            raise StorageUnavailable(
                f"GlobalFunc registry at {self.url} is unavailable: {err.message}", url=self.url
            )
        if status >= 500 and type(err) is GlobalFuncError:
            raise StorageError(f"GlobalFunc registry at {self.url} failed: {err.message}")
        raise err


def _key_query(key: str) -> dict[str, str]:
    k = parse_storage_key(key)
    return {"tier1": k.tier1, "package": k.package, "branch": k.branch, "name": k.func}


def _item(record: FunctionRecord) -> dict[str, Any]:
    """What a save sends of a record: what the server cannot compute from the code."""
    item: dict[str, Any] = {
        "tier1": record.tier1,
        "package": record.package,
        "branch": record.branch,
        "name": record.name,
        "code": record.code,
        "sha256": record.sha256,
        "dirty": record.dirty,
    }
    if record.commit is not None and _COMMIT.match(record.commit):
        item["commit"] = record.commit
    if _MODIFIED.match(record.modified_time or ""):
        item["modified_time"] = record.modified_time
    if record.mtime_ns > 0:
        item["mtime_ns"] = record.mtime_ns
    description = record.extra.get("description") if record.extra else None
    if isinstance(description, str):
        item["description"] = description
    return item


def _batches(records: Sequence[FunctionRecord]) -> list[list[FunctionRecord]]:
    out: list[list[FunctionRecord]] = []
    batch: list[FunctionRecord] = []
    size = 0
    for record in records:
        cost = len(record.code) * 4 // 3 + 512  # JSON escaping, the other fields
        if batch and (len(batch) >= BATCH_RECORDS or size + cost > BATCH_BYTES):
            out.append(batch)
            batch, size = [], 0
        batch.append(record)
        size += cost
    if batch:
        out.append(batch)
    return out


def _record(data: Any, url: str) -> FunctionRecord:
    if not isinstance(data, dict):
        raise StorageError(f"{url} answered a record that is not an object")
    return FunctionRecord.from_dict(data).verify()
