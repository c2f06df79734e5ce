"""GFClient: the API of a client of GlobalFunc servers (calls, catalogue, the retry rule).

Where a request goes is :mod:`globalfunc.client.routing`; how it is sent is
:mod:`globalfunc.client.transport` (urllib3). The retry rule lives here, in
:meth:`GFClient._request`:

- a request that never reached a server (the connection could not be opened) goes to
  the next candidate, and every candidate is tried again ``retries`` times with
  exponential ``backoff``: a call included, since it cannot have run;
- every call carries an ``Idempotency-Key`` (a new UUID, marked ``X-GF-Key-Origin:
  client`` so workers keep it only 60 s, or the one given to :meth:`GFClient.call_with`,
  checked before sending); workers run each key once (:mod:`globalfunc.idempotency`);
- a connection that failed after a call was sent: when the workers' outcome record shows
  no worker ever took the key, the call cannot have run and goes to the next worker like
  an unsent one; otherwise it goes again to another worker up to ``retries`` times
  (``from_workers(retries=N)`` or per call; default 0), where it returns the recorded
  outcome, waits for a live worker still running it, or runs again when the worker
  running it died; with no retries left it ends with
  :class:`~globalfunc.errors.ServerUnavailable` saying it may have run. A GET is sent
  again like an unsent request;
- a 502 ``Interrupted`` (the worker stopped while the call ran; it may have run in part)
  counts as a connection lost after sending: sent again only with ``retries`` left;
- a 503 (502 too for GETs) moves on to the next candidate; a GET is asked again after
  the backoff, a call is not (the last 503 is the answer); any other answer is final.
  Each 503's message goes into the final error.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import urllib3

from globalfunc import jsoncodec
from globalfunc.client.routing import Fixed, Prefer, Workers
from globalfunc.client.transport import Endpoint, Lost, NotSent, decode
from globalfunc.errors import GlobalFuncError, InvalidRequest
from globalfunc.idempotency.entry import CallKey, check_key, scope_of
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
        self._setup(token, timeout, retries, backoff, connect_timeout, resend=0)

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
        retries: int = 0,
        connect_retries: int = 2,
        backoff: float = 0.2,
        refresh: float = 10.0,
        redis_timeout: float = 2.0,
    ) -> GFClient:
        """A client of the live workers registered in Redis at ``redis_url`` (or ``directory``).

        ``prefer`` (an fnmatch pattern on worker names such as ``"m7_*"`` or
        ``"*_v101_*"``, or a predicate on :class:`~globalfunc.workers.WorkerInfo`) puts
        those workers first; the others are used when none of them can be reached.
        ``connect_timeout`` bounds opening a connection to a worker before moving on;
        ``timeout`` bounds the answer. ``retries``: how many times a call whose worker
        failed after it was sent goes again to another worker (see the module docstring:
        it runs again only if the worker running it died). ``connect_retries``: rounds
        over every worker, with ``backoff``, while none can be reached. Raises
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
        client._setup(token, timeout, connect_retries, backoff, connect_timeout, resend=retries)
        return client

    def _setup(
        self,
        token: str | None,
        timeout: float,
        retries: int,
        backoff: float,
        connect_timeout: float | None,
        *,
        resend: int,
    ) -> None:
        self.timeout = timeout
        self.resend = max(0, resend)
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
        return self.call_with(name, kwargs)

    def call_args(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``name`` with positional (and keyword) arguments, through ``/gfgo/``."""
        return self.call_with(name, kwargs, args=args)

    def call_with(
        self,
        name: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        args: tuple[Any, ...] | list[Any] = (),
        idempotency_key: str | None = None,
        retries: int | None = None,
    ) -> Any:
        """Call ``name`` with call options: ``idempotency_key`` (default: a new UUID; the
        same key on a later call returns the recorded outcome while the workers keep it)
        and ``retries`` (default: the client's; see the module docstring)."""
        call = parse_call_name(name)
        if idempotency_key is not None:
            extra = {"Idempotency-Key": check_key(idempotency_key)}
        else:  # made up here: the workers keep it only for this client's own resends
            extra = {"Idempotency-Key": uuid.uuid4().hex, "X-GF-Key-Origin": "client"}
        resend = self.resend if retries is None else max(0, retries)
        if args:
            body = self._encode(
                {"pack_func": str(call), "args": list(args), "kwargs": kwargs or {}}
            )
            extra["X-GF-Codec"] = "tagged"
            return self._request("POST", "/gfgo/", body, safe=False, extra=extra, resend=resend)
        body = self._encode(dict(kwargs or {}))
        data = self._request("POST", f"/call/{call}", body, safe=False, extra=extra, resend=resend)
        return data["result"]

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
        resend: int = 0,
    ) -> Any:
        headers = {**self._headers, **(extra or {})}
        key = headers.get("Idempotency-Key")
        failover = _RETRY_STATUS if safe else _FAILOVER_CALL_STATUS
        tried: list[Endpoint] = []
        reasons: list[str] = []
        answer: tuple[int, bytes] | None = None  # the last failure, when it was an answer
        for attempt in range(1 + self.retries):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            for endpoint in self._route.candidates(path):
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
                    if not safe and key is not None and not self._route.started(self._scoped(key)):
                        pass  # no worker ever took it: it did not run, send it on
                    elif not safe and resend > 0:
                        resend -= 1  # another worker returns, awaits or reruns its outcome
                    elif not safe:  # the call may have run: not sent again
                        raise self._route.unavailable(
                            method, path, tried, reasons, safe=safe, sent=True
                        ) from exc
                    self._route.failed(endpoint, reasons[-1])
                    continue
                if status in failover:
                    answer = (status, raw)
                    reasons.append(f"{endpoint.label}: HTTP {status}{_message(raw)}")
                    continue
                if not safe and status == 502 and resend > 0 and _error(raw) == "Interrupted":
                    resend -= 1  # it may have run in part: like a connection lost after sending
                    answer = None
                    reasons.append(f"{endpoint.label}: HTTP 502{_message(raw)}")
                    self._route.failed(endpoint, reasons[-1])
                    continue
                return decode(status, raw, method, path)
            if not safe and answer is not None:
                break  # a busy server answered: its 503 stands, the call is not repeated
        if answer is not None and len({e.url for e in tried}) == 1:
            return decode(*answer, method, path)  # one server's own error says most
        raise self._route.unavailable(method, path, tried, reasons, safe=safe, sent=False)

    def _scoped(self, key: str) -> CallKey:
        """``key`` in the scope the workers file it under for this client's token."""
        return CallKey(key, scope=scope_of(self._headers.get("Authorization")))


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(raw: bytes) -> str:
    """The error class an answer's JSON body names ("" if none)."""
    return str(_body(raw).get("error", ""))


def _message(raw: bytes) -> str:
    """``": <error>: <message>"`` of an error answer, for the final error's list."""
    body = _body(raw)
    if "message" not in body:
        return ""
    return f" {body.get('error', '')}: {str(body['message'])[:300]}"
