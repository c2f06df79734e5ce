"""Which server a client request goes to: one fixed URL, or the live workers in Redis.

A route yields candidate :class:`~globalfunc.client.transport.Endpoint` objects in the
order to try them, hears which could not be reached (:meth:`failed`), and words the
error when none took the request (:meth:`unavailable`).

:class:`Workers` reads the live workers of a :class:`~globalfunc.workers.WorkerDirectory`
and orders them by least outstanding requests: preferred workers first, then the others,
then those that could not be reached during the last ``refresh`` seconds or are draining;
a worker whose allow-list (``packages`` in its entry) does not hold the called package is
never a candidate for ``/call/<package>.<func>`` (``/gfgo/`` names its function in the
body: every worker is a candidate there). Within each group the least loaded first (the calls in flight its last heartbeat reported
plus this client's own requests to it not yet answered), ties in round-robin order. The
list is reloaded every ``refresh`` seconds and once more when every worker failed (a new
worker may have come). :meth:`Workers.started` asks the workers' outcome record whether a
call's key was ever taken by a worker (a call lost before any worker claimed it never ran).

Not here: sending (:mod:`globalfunc.client.transport`) and the retry rule
(:mod:`globalfunc.client.api`).
"""

from __future__ import annotations

import fnmatch
import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from globalfunc.client.transport import Endpoint
from globalfunc.errors import GlobalFuncError, InvalidRequest, ServerUnavailable, StorageError
from globalfunc.naming import parse_call_name

if TYPE_CHECKING:
    from globalfunc.idempotency import OutcomeRecord
    from globalfunc.workers import WorkerDirectory, WorkerInfo

__all__ = ["Fixed", "Prefer", "Workers"]

log = logging.getLogger(__name__)

#: a worker preference: an fnmatch pattern on the worker name, or a predicate
Prefer = str | Callable[["WorkerInfo"], bool] | None

_NOT_SENT = "; the call was not sent"
_MAY_HAVE_RUN = "; the call may have run, so it is not sent again"
_RESEND_HINT = (
    " (retries=N on from_workers or call_with sends it again; a worker runs it again only "
    "if it did not complete)"
)


class Fixed:
    """One server, always."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def candidates(self, path: str | None = None) -> Iterator[Endpoint]:
        yield self.endpoint

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        pass

    def started(self, key: str) -> bool:
        return True  # one plain server keeps no record to ask: assume it may have run

    def workers(self) -> list[WorkerInfo]:
        return []

    def unavailable(
        self,
        method: str,
        path: str,
        tried: list[Endpoint],
        reasons: list[str],
        *,
        safe: bool,
        sent: bool,
    ) -> ServerUnavailable:
        url = self.endpoint.url
        last = reasons[-1].removeprefix(f"{url}: ") if reasons else ""
        if sent:
            return ServerUnavailable(
                f"the connection to the GlobalFunc server at {url} failed after {method} {path} "
                f"was sent: {last}{_MAY_HAVE_RUN}",
                url=url,
            )
        return ServerUnavailable(
            f"cannot reach the GlobalFunc server at {url} ({method} {path}): {last}"
            + ("" if safe else _NOT_SENT),
            url=url,
        )

    def close(self) -> None:
        self.endpoint.close()


def _load(endpoint: Endpoint) -> int:
    info = endpoint.info
    return endpoint.outstanding + (info.inflight if info is not None else 0)


def _package(path: str | None) -> str | None:
    """The package a request path calls (``/call/<package>.<func>``), else ``None``."""
    if not path or not path.startswith("/call/"):
        return None
    name = urllib.parse.unquote(path[len("/call/") :].split("?", 1)[0])
    try:
        return parse_call_name(name).package
    except GlobalFuncError:
        return None


def _sent(tried: list[Endpoint], reasons: list[str]) -> list[str]:
    """The workers a request reached (a connection that failed before sending excluded)."""
    return [
        e.info.name if e.info else e.url
        for e, r in zip(tried, reasons, strict=False)
        if ": cannot connect: " not in r
    ]


def _preference(prefer: Prefer) -> Callable[[WorkerInfo], bool]:
    if prefer is None:
        return lambda info: False
    if isinstance(prefer, str):
        pattern = prefer
        return lambda info: fnmatch.fnmatchcase(info.name, pattern)
    return prefer


class Workers:
    """The live workers of a directory, in round-robin order, reloaded every ``refresh`` s."""

    def __init__(
        self, directory: WorkerDirectory, *, prefer: Prefer, refresh: float, owned: bool
    ) -> None:
        self.directory = directory
        self.refresh = refresh
        self._prefer = _preference(prefer)
        self._owned = owned
        self._lock = threading.Lock()
        self._endpoints: list[Endpoint] = []
        self._loaded = -math.inf
        self._turn = 0
        self._down: dict[str, float] = {}  # url -> when it could not be reached (monotonic)
        self._record: OutcomeRecord | None = None
        self._load(initial=True)

    def _load(self, *, initial: bool = False) -> None:
        try:
            infos = self.directory.live()  # I/O: before taking the lock
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
        fresh: dict[str, Endpoint] = {}
        for info in infos:
            if info.url in known:
                continue
            try:
                fresh[info.url] = Endpoint(info.url, info)
            except InvalidRequest as exc:
                log.warning("skipping worker %s: %s", info.name, exc.message)
        with self._lock:
            known = {e.url: e for e in self._endpoints}
            endpoints = []
            for info in infos:
                endpoint = known.get(info.url) or fresh.get(info.url)
                if endpoint is None:
                    continue
                endpoint.info = info
                endpoints.append(endpoint)
            live = {e.url for e in endpoints}
            gone = [e for url, e in known.items() if url not in live]
            self._endpoints = endpoints
            self._loaded = now = time.monotonic()
            self._down = {
                u: t for u, t in self._down.items() if u in live and now - t < self.refresh
            }
        for endpoint in gone:
            endpoint.close()

    def _order(self, package: str | None = None) -> list[Endpoint]:
        with self._lock:
            turn = self._turn
            self._turn += 1
            now = time.monotonic()
            down = {u for u, t in self._down.items() if now - t < self.refresh}
            groups: tuple[list[Endpoint], list[Endpoint], list[Endpoint]] = ([], [], [])
            for e in self._endpoints:
                info = e.info
                if package is not None and info is not None and not info.allows(package):
                    continue  # it would answer 403 Forbidden
                preferred = info is not None and self._prefer(info)
                away = e.url in down or (info is not None and info.draining)
                groups[2 if away else 0 if preferred else 1].append(e)
        order: list[Endpoint] = []
        for group in groups:
            k = turn % len(group) if group else 0
            order += sorted(group[k:] + group[:k], key=_load)  # stable: ties stay in turn
        return order

    def candidates(self, path: str | None = None) -> Iterator[Endpoint]:
        """The workers to try for ``path``, best first (only those serving its package)."""
        package = _package(path)
        if time.monotonic() - self._loaded >= self.refresh:
            self._load()
        seen = set()
        for endpoint in self._order(package):
            seen.add(endpoint.url)
            yield endpoint
        self._load()  # every worker failed, or none was live: look again
        for endpoint in self._order(package):
            if endpoint.url not in seen:
                yield endpoint

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        with self._lock:
            fresh = endpoint.url not in self._down
            self._down[endpoint.url] = time.monotonic()
        if fresh:
            log.warning("worker unreachable, trying the next: %s", reason)

    def started(self, key: str) -> bool:
        """Whether a worker ever claimed call ``key`` (``True`` when Redis cannot say)."""
        from globalfunc.idempotency import OutcomeRecord

        with self._lock:
            record = self._record
        if record is None:
            client = getattr(self.directory, "client", None)
            if client is None:  # a directory that keeps no outcome record cannot say
                return True
            record = OutcomeRecord(client=client, url=self.directory.url)
            with self._lock:
                self._record = record
        try:
            return record.look(key) is not None
        except StorageError:
            return True

    def workers(self) -> list[WorkerInfo]:
        if time.monotonic() - self._loaded >= self.refresh:
            self._load()
        with self._lock:
            return [e.info for e in self._endpoints if e.info is not None]

    def unavailable(
        self,
        method: str,
        path: str,
        tried: list[Endpoint],
        reasons: list[str],
        *,
        safe: bool,
        sent: bool,
    ) -> ServerUnavailable:
        names = list(dict.fromkeys(e.info.name if e.info else e.url for e in tried))
        package = _package(path)
        if not tried and package is not None:
            with self._lock:
                infos = [e.info for e in self._endpoints if e.info is not None]
            if infos:
                lists = sorted({", ".join(i.packages or ()) for i in infos})
                return ServerUnavailable(
                    f"no live worker serves package {package!r}: the {len(infos)} live workers "
                    f"in {self.directory.url} allow only {'; '.join(repr(x) for x in lists)}; "
                    "start a worker whose allow-list holds it (GF_ALLOW_PACKAGES)",
                    url=self.directory.url,
                    tried=[],
                )
        if not tried:
            return ServerUnavailable(
                f"no live GlobalFunc workers are registered in {self.directory.url}; "
                "start one with 'gf worker'",
                url=self.directory.url,
                tried=[],
            )
        if sent:
            to = _sent(tried, reasons)
            if len(to) > 1:
                return ServerUnavailable(
                    f"{method} {path} was sent {len(to)} times ({', '.join(to)}) and each "
                    f"worker's connection was lost before it answered (last: {reasons[-1]}); "
                    "the retries are spent and it may have run, so it is not sent again (a "
                    "function that kills its worker takes one worker down per send: see the "
                    "README on retries)",
                    url=tried[-1].url,
                    tried=names,
                )
            return ServerUnavailable(
                f"worker {reasons[-1]} after {method} {path} was sent{_MAY_HAVE_RUN} "
                f"to another worker{_RESEND_HINT}",
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
            endpoint.close()
        if self._owned:
            self.directory.close()
