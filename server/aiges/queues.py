"""The Python plugin server's two queues and their byte limit (``GF_AIGES_QUEUE_MB``).

The same rules as the C++ server's (native/aiges/outbox.h and its request budget), so the
two servers behave alike under load (README "AIGES queue limits"):

- :class:`ByteBudget`: the bytes of once-exec bodies accepted and not finished (waiting for
  or in user code). A body that would go over the limit is refused at once; one body larger
  than the whole limit still runs when nothing else is held.
- :class:`Outbox`: results on their way to the loader's ``communicate`` stream, bounded by
  the same limit: when a new one would go over it, the OLDEST queued results are replaced
  by a Response with their tag, ret 30003 and no data (every tag still gets its Response;
  the newest is always kept whole), and one warning a second at most says so. A queued
  result counts its serialized size plus :data:`ENTRY_COST` (holding it costs that much in
  Python, so many small results are bounded too); a dropped one keeps only its tag and counts
  nothing, so tags the loader never collects still grow the queue, slowly. One
  stream receives results at a time: a newer stream takes over and the older one is
  cancelled, so a stream the loader no longer reads holds nothing back.

  Delivery across a take-over is weaker than the C++ server's, because grpcio's streaming
  API does not say whether a send finished: a result the older stream was sending when it
  was cancelled is given back and sent first on the newer one, so it can arrive twice, the
  same tag (measured: 12 of 3,000 results with a new stream every 5-50 ms; the C++ server
  none); and results grpcio had already counted sent (buffered by its transport) to a
  stream whose reader had stopped reading are lost with it (measured: the first 2 of 8
  results of 4 MiB).

What it does not do: build Responses or run user code (:mod:`server.aiges.servicer`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from server.aiges.engine import EXEC_FAILED
from server.aiges.proto import aiges_pb2

__all__ = ["DROPPED_RET", "ENTRY_COST", "ByteBudget", "Outbox"]

log = logging.getLogger(__name__)

MIB = 1 << 20
DROPPED_RET = EXEC_FAILED  # the ret of the Response that replaces a dropped result
_POLL_SECONDS = 0.5
_REPORT_SECONDS = 1.0
_TAGS_SHOWN = 5
# What a queued result counts on top of its serialized size: what holding it costs in Python
# (measured about 1.2 KiB of RSS a small result), so small results are bounded by memory too.
ENTRY_COST = 1024


def _amount(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{-(-size // 1024)} KiB"


class ByteBudget:
    """Bytes held by accepted once-exec bodies, against ``limit``; thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def try_take(self, size: int) -> tuple[bool, int]:
        """Hold ``size`` bytes if they fit (or nothing is held); ``(taken, held before)``."""
        with self._lock:
            held = self._held
            if held and held + size > self.limit:
                return False, held
            self._held = held + size
            return True, held

    def give(self, size: int) -> None:
        with self._lock:
            self._held -= size

    def refusal(self, tag: str, size: int, held: int) -> str:
        """The RESOURCE_EXHAUSTED detail for a body that did not fit (the C++ server's)."""
        return (
            f"wrapperOnceExec: tag {tag}: {size} bytes would exceed GF_AIGES_QUEUE_MB="
            f"{self.limit // MIB} (requests waiting for or in user code hold {held} bytes); "
            "retry when earlier calls finish, or raise GF_AIGES_QUEUE_MB"
        )


@dataclass(slots=True)
class _Entry:
    tag: str
    response: aiges_pb2.Response | None  # None: dropped, sent as a 30003 with no data
    size: int  # what it counts against the limit: 0 once dropped


@dataclass(slots=True)
class _Drops:
    count: int = 0
    bytes: int = 0
    tags: list[str] = field(default_factory=list)  # the first few, oldest first


class Outbox:
    """Results waiting for the ``communicate`` stream (see the module docstring)."""

    def __init__(self, limit: int = 256 * MIB) -> None:
        self.limit = limit
        self.closed = threading.Event()
        self._cond = threading.Condition()
        # Delivered in this order: ``_given`` (results a stream gave back: the oldest, few),
        # ``_dropped`` (results past the trim, kept as their tags), ``_queue`` (whole
        # results, oldest first, trimmed from the left: O(1) however many went before).
        self._given: deque[_Entry] = deque()
        self._dropped: deque[_Entry] = deque()
        self._queue: deque[_Entry] = deque()
        self._bytes = 0  # of the whole results queued, ENTRY_COST each included
        self._reader = 0  # the number of the stream that receives results
        self._context: grpc.ServicerContext | None = None  # that stream's
        self._drops = _Drops()
        self._reported = time.monotonic() - _REPORT_SECONDS  # the first drops are told at once

    def put(self, response: aiges_pb2.Response) -> None:
        size = response.ByteSize() + ENTRY_COST
        with self._cond:
            self._queue.append(_Entry(response.tag, response, size))
            self._bytes += size
            self._trim_locked()
            report = self._report_locked(force=False)
            self._cond.notify_all()
        if report:
            log.warning("%s", report)

    def _trim_locked(self) -> None:
        for entry in self._given:  # given back: the oldest
            if self._bytes <= self.limit:
                return
            if entry.response is not None:
                self._drop_locked(entry)
        while self._bytes > self.limit and len(self._queue) > 1:  # the newest is kept whole
            entry = self._queue.popleft()
            self._drop_locked(entry)
            self._dropped.append(entry)

    def _drop_locked(self, entry: _Entry) -> None:
        self._bytes -= entry.size
        self._drops.count += 1
        self._drops.bytes += entry.size - ENTRY_COST
        if len(self._drops.tags) < _TAGS_SHOWN:
            self._drops.tags.append(entry.tag)
        entry.response, entry.size = None, 0

    def _report_locked(self, *, force: bool) -> str:
        drops = self._drops
        now = time.monotonic()
        if not drops.count or (not force and now - self._reported < _REPORT_SECONDS):
            return ""
        self._drops, self._reported = _Drops(), now
        tags = ", ".join(drops.tags) + (", ..." if drops.count > len(drops.tags) else "")
        return (
            f"no communicate stream read results and they passed GF_AIGES_QUEUE_MB "
            f"({self.limit // MIB} MiB): {drops.count} oldest result(s) "
            f"({_amount(drops.bytes)}, tags {tags}) were replaced by ret {DROPPED_RET} "
            "with no data; open communicate before sending once execs"
        )

    def stream(self, context: grpc.ServicerContext) -> Iterator[aiges_pb2.Response]:
        """Take over delivery (an older stream is cancelled) and yield results until this
        stream ends, a newer one takes over, or the outbox closes."""
        with self._cond:
            self._reader += 1
            me, older, self._context = self._reader, self._context, context
            self._cond.notify_all()
        if older is not None:
            older.cancel()  # its handler ends; a write it was blocked in fails
        context.add_callback(self._wake)
        while context.is_active():  # asked outside our lock: grpcio takes its own
            with self._cond:
                if not self._has_locked() and not self.closed.is_set() and self._reader == me:
                    self._cond.wait(_POLL_SECONDS)
                if self.closed.is_set() or self._reader != me:
                    return
                if not self._has_locked():
                    continue
                entry = (self._given or self._dropped or self._queue).popleft()
                self._bytes -= entry.size
            try:
                yield entry.response or aiges_pb2.Response(tag=entry.tag, ret=DROPPED_RET)
            except GeneratorExit:  # grpcio gave up on it: sent or not, it cannot say
                with self._cond:
                    self._given.appendleft(entry)  # the next stream sends it first
                    self._bytes += entry.size
                    self._cond.notify_all()
                raise

    def _has_locked(self) -> bool:
        return bool(self._given or self._dropped or self._queue)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Stop delivering; readers return; what was dropped and not yet said is logged."""
        self.closed.set()
        with self._cond:
            report = self._report_locked(force=True)
            self._cond.notify_all()
        if report:
            log.warning("%s", report)
