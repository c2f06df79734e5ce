"""GFClient: the API of a client of GlobalFunc servers (calls, catalogue, the retry rule).

Where a request goes is :mod:`globalfunc.client.routing`; how it is sent is
:mod:`globalfunc.client.transport` (urllib3). The retry rule lives here, in
:meth:`GFClient._request`:

- a request that never reached a server (the connection could not be opened) goes to
  the next candidate, and every candidate is tried again ``retries`` times with
  exponential ``backoff``: a call included, since it cannot have run;
- a connection that failed after the request was sent ends a call with
  :class:`~globalfunc.errors.ServerUnavailable` saying it may have run; a GET is sent
  again like an unsent request;
- a 503 (502 too for GETs) moves on to the next candidate; a GET is asked again after
  the backoff, a call is not (the last 503 is the answer); any other answer is final.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import urllib3

from globalfunc import jsoncodec
from globalfunc.client.routing import Fixed, Prefer, Workers
from globalfunc.client.transport import Endpoint, Lost, NotSent, decode
from globalfunc.errors import GlobalFuncError, InvalidRequest
from globalfunc.naming import parse_call_name

if TYPE_CHECKING:
    from globalfunc.workers import WorkerDirectory, WorkerInfo

__all__ = ["GFClient"]

_RETRY_STATUS = frozenset({502, 503})
_FAILOVER_CALL_STATUS = frozenset({503})  # the server refused before running anything


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
        self._route: Fixed | Workers = Fixed(Endpoint(url))
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
            route = Workers(directory, prefer=prefer, refresh=refresh, owned=owned)
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
        self._timeout = urllib3.Timeout(connect=self.connect_timeout, read=timeout)
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
        """Close the idle connections (and the worker directory this client opened)."""
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
        failover = _RETRY_STATUS if safe else _FAILOVER_CALL_STATUS
        tried: list[Endpoint] = []
        reasons: list[str] = []
        answer: tuple[int, bytes] | None = None  # the last failure, when it was an answer
        for attempt in range(1 + self.retries):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            for endpoint in self._route.candidates():
                tried.append(endpoint)
                try:
                    status, raw = endpoint.send(method, path, body, headers, self._timeout)
                except NotSent as exc:
                    answer = None
                    reasons.append(f"{endpoint.label}: cannot connect: {exc}")
                    self._route.failed(endpoint, reasons[-1])
                    continue
                except Lost as exc:
                    answer = None
                    reasons.append(f"{endpoint.label}: {exc}")
                    if not safe:  # the call may have run: never send it again
                        raise self._route.unavailable(
                            method, path, tried, reasons, safe=safe, sent=True
                        ) from exc
                    self._route.failed(endpoint, reasons[-1])
                    continue
                if status in failover:
                    answer = (status, raw)
                    reasons.append(f"{endpoint.label}: HTTP {status}")
                    continue
                return decode(status, raw, method, path)
            if not safe and answer is not None:
                break  # a busy server answered: its 503 stands, the call is not repeated
        if answer is not None and len({e.url for e in tried}) == 1:
            return decode(*answer, method, path)  # one server's own error says most
        raise self._route.unavailable(method, path, tried, reasons, safe=safe, sent=False)
