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
thread. It does not discover workers or fail over between servers.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import (
    GlobalFuncError,
    InvalidRequest,
    ServerUnavailable,
    error_from_dict,
)
from globalfunc.naming import parse_call_name

__all__ = ["GFClient"]

_RETRY_STATUS = frozenset({502, 503})
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


class GFClient:
    """A client of one GlobalFunc HTTP server."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.2,
    ) -> None:
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidRequest(f"server URL {url!r} must look like http://host:port/")
        self.url = url
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()

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
        """The server's ``/healthz`` answer."""
        return dict(self._request("GET", "/healthz", None, safe=True))

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

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

    def _connection(self, fresh: bool) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and (fresh or _dropped(conn)):
            conn.close()
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

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
        last: str = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            conn = self._connection(fresh=attempt > 0)
            try:
                conn.request(method, self._prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                status = response.status
                raw = response.read()
            except _NETWORK_ERRORS as exc:
                conn.close()
                self._local.conn = None
                last = f"{type(exc).__name__}: {exc}"
                continue
            if safe and status in _RETRY_STATUS and attempt + 1 < attempts:
                last = f"HTTP {status}"
                continue
            return _decode(status, raw, method, path)
        raise ServerUnavailable(
            f"cannot reach the GlobalFunc server at {self.url} ({method} {path}): {last}"
            + ("" if safe else "; calls are not retried because functions may have side effects"),
            url=self.url,
        )


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
