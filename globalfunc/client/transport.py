"""The client's transport: one server's address and its urllib3 connection pool.

:meth:`Endpoint.send` sends one request and says, when it fails, whether the request
can have reached the server. That is the whole retry rule of the client:

- :class:`NotSent`: the connection could not be opened (refused, connect timeout, a
  name that does not resolve). Nothing reached the server, so any request, a call
  included, may go again (on a fresh connection, or to the next worker). A pooled
  keep-alive connection that the server closed (a worker that was killed or restarted)
  is never used: urllib3 checks each pooled connection before reuse and opens a new
  one instead.
- :class:`Lost`: the connection failed after the request was handed to it (reset, no
  answer, a read timeout). The server may have run it; only a safe request (a GET) is
  sent again.

TLS errors count as :class:`Lost`: urllib3 reports a failed handshake and a failed read
the same way, and a call must not be sent twice on a guess.

Not here: which server to ask (:mod:`globalfunc.client.routing`), what to retry and
how often (:mod:`globalfunc.client.api`).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import urllib3
from urllib3.exceptions import ConnectTimeoutError, EmptyPoolError, HTTPError

from globalfunc import jsoncodec
from globalfunc.errors import InvalidRequest, ServerUnavailable, error_from_dict

if TYPE_CHECKING:
    from globalfunc.workers import WorkerInfo

__all__ = ["Endpoint", "Lost", "NotSent", "decode"]

#: idle keep-alive connections kept per server (more are opened when threads need them)
POOL_SIZE = 16


class NotSent(Exception):
    """The request never reached the server: safe to send again, anywhere."""


class Lost(Exception):
    """The connection failed after the request was sent: it may have run."""


class Endpoint:
    """One server: where it is, and a thread-safe pool of keep-alive connections to it."""

    def __init__(self, url: str, info: WorkerInfo | None = None) -> None:
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        try:
            port = parsed.port
        except ValueError:
            port = -1
        if parsed.scheme not in ("http", "https") or not parsed.hostname or port == -1:
            raise InvalidRequest(f"server URL {url!r} must look like http://host:port/")
        self.url = url
        self.info = info
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = port or (443 if self.https else 80)
        self.prefix = parsed.path.rstrip("/")
        cls = urllib3.HTTPSConnectionPool if self.https else urllib3.HTTPConnectionPool
        self._pool = cls(self.host, self.port, maxsize=POOL_SIZE, block=False, retries=False)
        #: this client's requests to this server not yet answered (least-outstanding choice)
        self.outstanding = 0
        self._count = threading.Lock()

    @property
    def label(self) -> str:
        return f"{self.info.name} ({self.url})" if self.info is not None else self.url

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: urllib3.Timeout,
    ) -> tuple[int, bytes]:
        """Send one request; its status and body. :class:`NotSent` or :class:`Lost` on a
        connection failure (an HTTP error status is an answer, not a failure)."""
        with self._count:
            self.outstanding += 1
        try:
            return self._send(method, path, body, headers, timeout)
        finally:
            with self._count:
                self.outstanding -= 1

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: urllib3.Timeout,
    ) -> tuple[int, bytes]:
        try:
            response = self._pool.urlopen(
                method,
                self.prefix + path,
                body=body,
                headers=dict(headers),
                timeout=timeout,
                retries=False,
                redirect=False,
                assert_same_host=False,
            )
        except (ConnectTimeoutError, EmptyPoolError) as exc:  # NewConnectionError is one too
            raise NotSent(_why(exc)) from exc
        except (HTTPError, OSError) as exc:
            raise Lost(_why(exc)) from exc
        return response.status, response.data

    def close(self) -> None:
        """Close the idle connections (a connection in use closes when its request ends)."""
        self._pool.close()


def _why(exc: BaseException) -> str:
    inner = exc
    # urllib3 wraps the socket error ("Connection aborted.", ConnectionResetError(...))
    while isinstance(inner, HTTPError) and inner.args and isinstance(inner.args[-1], Exception):
        inner = inner.args[-1]
    text = str(inner) or type(inner).__name__
    return f"{type(inner).__name__}: {text}" if inner is not exc else text


def decode(status: int, raw: bytes, method: str, path: str) -> Any:
    """The JSON body of a success, or the :mod:`globalfunc.errors` class an error names."""
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
