"""GFClient: call registered functions on a GlobalFunc HTTP server as if they were local.

::

    from globalfunc.client import GFClient

    gf = GFClient("http://127.0.0.1:8000", token="...")
    gf.call("Base.inverse_time_str", time_str="2024-02-15 11:11:11", bias_hours=-8)
    gf.call_args("Base.safe_div", 1, 2)
    gf.functions(); gf.search("time")

Arguments and results go through :mod:`globalfunc.jsoncodec`, so datetime, date, Decimal,
bytes, sets, tuples, Path and numpy arrays arrive as themselves. A failed call raises the
same :mod:`globalfunc.errors` class a local call would (``FunctionNotFound``,
``BadArguments``, ``ExecutionError`` with the remote type and message, ...), rebuilt from
the server's JSON error body; a server that cannot be reached raises
:class:`~globalfunc.errors.ServerUnavailable`.

Only safe requests (GETs) are retried, on connection failures and 502/503; a call is
never sent twice, because functions may have side effects. One keep-alive connection per
thread and server.

Workers: ``GFClient.from_workers(redis_url)`` calls through the live workers that
``gf worker`` registered in Redis (:mod:`globalfunc.workers`), round robin (``prefer``
puts some first), and refreshes their list every ``refresh`` seconds and whenever every
worker failed. A call moves on to the next worker only when it cannot have run there:
the connection could not be opened (refused, connect timeout, unresolvable host) or the
worker answered 503. Any other answer is final, errors included (4xx, a function that
raised, a call timeout): sending it again could run the function twice. A worker that
could not be reached is tried last until the next refresh period. When no worker takes
the request, :class:`~globalfunc.errors.ServerUnavailable` names every worker tried.
"""

from __future__ import annotations

import fnmatch
import http.client
import logging
import math
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import (
    GlobalFuncError,
    InvalidRequest,
    ServerUnavailable,
    StorageError,
    error_from_dict,
)
from globalfunc.naming import parse_call_name

if TYPE_CHECKING:
    from globalfunc.workers import WorkerDirectory, WorkerInfo

__all__ = ["GFClient"]

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({502, 503})
_FAILOVER_CALL_STATUS = frozenset({503})  # the server refused before running anything
_NETWORK_ERRORS = (OSError, http.client.HTTPException)

#: a worker preference: an fnmatch pattern on the worker name, or a predicate
Prefer = str | Callable[["WorkerInfo"], bool] | None


class GFClient:
    """A client of one GlobalFunc HTTP server, or of the live workers in Redis."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.2,
        connect_timeout: float | None = None,
    ) -> None:
        self._route: _Fixed | _Workers = _Fixed(_Endpoint(url))
        self.url = url
        self._setup(token, timeout, retries, backoff, connect_timeout)

    @classmethod
    def from_workers(
        cls,
        redis_url: str | None = None,
        *,
        directory: WorkerDirectory | None = None,
        prefer: Prefer = None,
        token: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 2.0,
        retries: int = 2,
        backoff: float = 0.2,
        refresh: float = 10.0,
        redis_timeout: float = 2.0,
    ) -> GFClient:
        """A client of the live workers registered in Redis at ``redis_url`` (or ``directory``).

        ``prefer`` (an fnmatch pattern on worker names such as ``"m7_*"`` or
        ``"*_v101_*"``, or a predicate on :class:`~globalfunc.workers.WorkerInfo`) puts
        those workers first; the others are used when none of them can be reached.
        ``connect_timeout`` bounds opening a connection to a worker before moving on;
        ``timeout`` bounds the answer. Raises
        :class:`~globalfunc.errors.StorageUnavailable` when Redis cannot be reached now.
        """
        from globalfunc.workers import WorkerDirectory

        owned = directory is None
        if directory is None:
            if not redis_url:
                raise InvalidRequest(
                    "GFClient.from_workers needs the Redis URL the workers register in "
                    "(redis://host:6379/0) or a WorkerDirectory"
                )
            directory = WorkerDirectory(redis_url, timeout=redis_timeout)
        try:
            route = _Workers(directory, prefer=prefer, refresh=refresh, owned=owned)
        except BaseException:
            if owned:
                directory.close()
            raise
        client = cls.__new__(cls)
        client._route = route
        client.url = directory.url
        client._setup(token, timeout, retries, backoff, connect_timeout)
        return client

    def _setup(
        self,
        token: str | None,
        timeout: float,
        retries: int,
        backoff: float,
        connect_timeout: float | None,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    # -- calls ------------------------------------------------------------------------------
    def call(self, name: str, /, **kwargs: Any) -> Any:
        """Call ``name`` with keyword arguments; the function's result."""
        call = parse_call_name(name)
        body = self._encode(kwargs)
        data = self._request("POST", f"/call/{call}", body, safe=False)
        return data["result"]

    def call_args(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``name`` with positional (and keyword) arguments, through ``/gfgo/``."""
        call = parse_call_name(name)
        body = self._encode({"pack_func": str(call), "args": list(args), "kwargs": kwargs})
        return self._request("POST", "/gfgo/", body, safe=False, extra={"X-GF-Codec": "tagged"})

    # -- catalogue --------------------------------------------------------------------------
    def functions(self, package: str | None = None) -> list[dict[str, Any]]:
        """Exposed functions: name, signature, summary, sha256 for each."""
        query = f"?{urllib.parse.urlencode({'package': package})}" if package else ""
        data = self._request("GET", f"/functions{query}", None, safe=True)
        return list(data["functions"])

    def function(self, name: str) -> dict[str, Any]:
        """One function's description: signature, docstring, params, hash, versions."""
        call = parse_call_name(name)
        return dict(self._request("GET", f"/functions/{call}", None, safe=True))

    def search(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        """Functions matching every word of ``q``, best first."""
        query = urllib.parse.urlencode({"q": q, "limit": limit})
        return list(self._request("GET", f"/search?{query}", None, safe=True)["functions"])

    def health(self) -> dict[str, Any]:
        """The server's ``/healthz`` answer (of one of the workers, with ``from_workers``)."""
        return dict(self._request("GET", "/healthz", None, safe=True))

    def workers(self) -> list[WorkerInfo]:
        """The live workers calls are spread over (refreshed when stale); ``[]`` for one URL."""
        return self._route.workers()

    def close(self) -> None:
        """Close this thread's connections (others close when their threads end)."""
        self._route.close()

    def __enter__(self) -> GFClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def _encode(value: Any) -> bytes:
        try:
            return jsoncodec.dumps(value)
        except GlobalFuncError as exc:
            raise InvalidRequest(f"arguments cannot be sent: {exc.message}") from exc

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        safe: bool,
        extra: Mapping[str, str] | None = None,
    ) -> Any:
        headers = {**self._headers, **(extra or {})}
        attempts = 1 + (self.retries if safe else 0)
        failover = _RETRY_STATUS if safe else _FAILOVER_CALL_STATUS
        tried: list[_Endpoint] = []
        reasons: list[str] = []
        answer: tuple[int, bytes] | None = None  # the last failure, when it was an answer
        sent = False  # a call failed after it was sent: it may have run
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            for endpoint in self._route.candidates():
                tried.append(endpoint)
                conn = endpoint.connection(fresh=attempt > 0, timeout=self.timeout)
                try:
                    _open(conn, self.connect_timeout, self.timeout)
                except _NETWORK_ERRORS as exc:
                    endpoint.drop()
                    answer = None
                    reasons.append(f"{endpoint.label}: cannot connect: {_why(exc)}")
                    self._route.failed(endpoint, reasons[-1])
                    continue
                try:
                    conn.request(method, endpoint.prefix + path, body=body, headers=headers)
                    response = conn.getresponse()
                    status = response.status
                    raw = response.read()
                except _NETWORK_ERRORS as exc:
                    endpoint.drop()
                    answer = None
                    reasons.append(f"{endpoint.label}: {_why(exc)}")
                    if not safe:  # the call may have run: never send it again
                        sent = True
                        break
                    self._route.failed(endpoint, reasons[-1])
                    continue
                if status in failover:
                    answer = (status, raw)
                    reasons.append(f"{endpoint.label}: HTTP {status}")
                    continue
                return _decode(status, raw, method, path)
            if sent:
                break
        if answer is not None and len({e.url for e in tried}) == 1:
            return _decode(*answer, method, path)  # one server's own error says most
        raise self._route.unavailable(method, path, tried, reasons, safe=safe, sent=sent)


class _Endpoint:
    """One server: where it is, and this client's keep-alive connection to it (per thread)."""

    def __init__(self, url: str, info: WorkerInfo | None = None) -> None:
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidRequest(f"server URL {url!r} must look like http://host:port/")
        self.url = url
        self.info = info
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or (443 if self.https else 80)
        self.prefix = parsed.path.rstrip("/")
        self._local = threading.local()

    @property
    def label(self) -> str:
        return f"{self.info.name} ({self.url})" if self.info is not None else self.url

    def connection(self, *, fresh: bool, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and (fresh or _dropped(conn)):
            conn.close()
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=timeout)
            self._local.conn = conn
        return conn

    def drop(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _open(conn: http.client.HTTPConnection, connect_timeout: float, timeout: float) -> None:
    """Connect now (bounded by ``connect_timeout``) so a failure is known not to have sent."""
    if conn.sock is not None:
        return
    conn.timeout = connect_timeout
    try:
        conn.connect()
    finally:
        conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _Fixed:
    """One server, always."""

    def __init__(self, endpoint: _Endpoint) -> None:
        self.endpoint = endpoint

    def candidates(self) -> Iterator[_Endpoint]:
        yield self.endpoint

    def failed(self, endpoint: _Endpoint, reason: str) -> None:
        pass

    def workers(self) -> list[WorkerInfo]:
        return []

    def unavailable(
        self,
        method: str,
        path: str,
        tried: list[_Endpoint],
        reasons: list[str],
        *,
        safe: bool,
        sent: bool,
    ) -> ServerUnavailable:
        last = reasons[-1].removeprefix(f"{self.endpoint.url}: ") if reasons else ""
        return ServerUnavailable(
            f"cannot reach the GlobalFunc server at {self.endpoint.url} ({method} {path}): {last}"
            + ("" if safe else "; calls are not retried because functions may have side effects"),
            url=self.endpoint.url,
        )

    def close(self) -> None:
        self.endpoint.drop()


def _preference(prefer: Prefer) -> Callable[[WorkerInfo], bool]:
    if prefer is None:
        return lambda info: False
    if isinstance(prefer, str):
        pattern = prefer
        return lambda info: fnmatch.fnmatchcase(info.name, pattern)
    return prefer


class _Workers:
    """The live workers of a directory, in round-robin order, reloaded every ``refresh`` s."""

    def __init__(
        self, directory: WorkerDirectory, *, prefer: Prefer, refresh: float, owned: bool
    ) -> None:
        self.directory = directory
        self.refresh = refresh
        self._prefer = _preference(prefer)
        self._owned = owned
        self._lock = threading.Lock()
        self._endpoints: list[_Endpoint] = []
        self._loaded = -math.inf
        self._turn = 0
        self._down: dict[str, float] = {}  # url -> when it could not be reached (monotonic)
        self._load(initial=True)

    def _load(self, *, initial: bool = False) -> None:
        try:
            infos = self.directory.live()
        except StorageError as exc:
            if initial:
                raise
            log.warning(
                "cannot refresh the worker list from %s, keeping the last one (%d workers): %s",
                self.directory.url,
                len(self._endpoints),
                exc.message,
            )
            with self._lock:
                self._loaded = time.monotonic()  # ask again next period, not every call
            return
        with self._lock:
            known = {e.url: e for e in self._endpoints}
            endpoints = []
            for info in infos:
                endpoint = known.get(info.url)
                if endpoint is None:
                    try:
                        endpoint = _Endpoint(info.url, info)
                    except InvalidRequest as exc:
                        log.warning("skipping worker %s: %s", info.name, exc.message)
                        continue
                endpoint.info = info
                endpoints.append(endpoint)
            self._endpoints = endpoints
            self._loaded = now = time.monotonic()
            live = {e.url for e in endpoints}
            self._down = {
                u: t for u, t in self._down.items() if u in live and now - t < self.refresh
            }

    def _order(self) -> list[_Endpoint]:
        with self._lock:
            turn = self._turn
            self._turn += 1
            now = time.monotonic()
            down = {u for u, t in self._down.items() if now - t < self.refresh}
            groups: tuple[list[_Endpoint], list[_Endpoint], list[_Endpoint]] = ([], [], [])
            for e in self._endpoints:
                info = e.info
                preferred = info is not None and self._prefer(info)
                groups[2 if e.url in down else 0 if preferred else 1].append(e)
        order: list[_Endpoint] = []
        for group in groups:
            k = turn % len(group) if group else 0
            order += group[k:] + group[:k]
        return order

    def candidates(self) -> Iterator[_Endpoint]:
        if time.monotonic() - self._loaded >= self.refresh:
            self._load()
        seen = set()
        for endpoint in self._order():
            seen.add(endpoint.url)
            yield endpoint
        self._load()  # every worker failed, or none was live: look again
        for endpoint in self._order():
            if endpoint.url not in seen:
                yield endpoint

    def failed(self, endpoint: _Endpoint, reason: str) -> None:
        with self._lock:
            fresh = endpoint.url not in self._down
            self._down[endpoint.url] = time.monotonic()
        if fresh:
            log.warning("worker unreachable, trying the next: %s", reason)

    def workers(self) -> list[WorkerInfo]:
        if time.monotonic() - self._loaded >= self.refresh:
            self._load()
        with self._lock:
            return [e.info for e in self._endpoints if e.info is not None]

    def unavailable(
        self,
        method: str,
        path: str,
        tried: list[_Endpoint],
        reasons: list[str],
        *,
        safe: bool,
        sent: bool,
    ) -> ServerUnavailable:
        names = list(dict.fromkeys(e.info.name if e.info else e.url for e in tried))
        if not tried:
            return ServerUnavailable(
                f"no live GlobalFunc workers are registered in {self.directory.url}; "
                "start one with 'gf worker'",
                url=self.directory.url,
                tried=[],
            )
        if sent:
            return ServerUnavailable(
                f"worker {reasons[-1]} after {method} {path} was sent; the call may have run, "
                "so it is not sent to another worker",
                url=tried[-1].url,
                tried=names,
            )
        return ServerUnavailable(
            f"no GlobalFunc worker took {method} {path}; tried {len(names)} ({'; '.join(reasons)})",
            url=self.directory.url,
            tried=names,
        )

    def close(self) -> None:
        with self._lock:
            endpoints = list(self._endpoints)
        for endpoint in endpoints:
            endpoint.drop()
        if self._owned:
            self.directory.close()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed this idle keep-alive connection (readable means EOF)."""
    sock: socket.socket | None = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _decode(status: int, raw: bytes, method: str, path: str) -> Any:
    if status < 400:
        try:
            return jsoncodec.loads(raw)
        except InvalidRequest as exc:
            raise ServerUnavailable(
                f"{method} {path} answered {status} with a body that is not JSON: {raw[:200]!r}"
            ) from exc
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and "error" in body:
        raise error_from_dict(body, status)
    raise ServerUnavailable(
        f"{method} {path} answered HTTP {status}: {raw[:200].decode('utf-8', 'replace')}",
        status=status,
    )
