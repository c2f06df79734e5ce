"""The parent's handle on one worker process: frames over its stdin and stdout, on an event loop.

A :class:`WorkerHandle` is the :class:`~globalfunc.executor.pool.Slot` of the isolated
executor. It writes a request frame without blocking (a large one in pieces as the pipe
drains), reads answers as they arrive, and, when the process ends, says whether the
call in flight had reached it: the bytes of the request still unread in the pipe
(``FIONREAD`` on our end) tell a call the worker never read from one it took. It also
remembers which function versions the worker has been sent (``loaded``), so code crosses
the pipe once per worker and version.

A worker is code we do not trust to keep the protocol: an answer larger than
``max_frame``, one with an unknown status, an unreadable error, or one nobody asked for
marks the handle ``broken`` and kills the worker (the pool replaces it), and a flooding
worker is read at most 1 MiB per loop turn, so it cannot hold the server's event loop.

What it does not do: decide anything. Timeouts, replacement and retries are the pool's
(:mod:`globalfunc.executor.pool`); the frame format is :mod:`globalfunc.executor.frame`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
from collections.abc import Callable
from typing import Any

import orjson

from globalfunc.executor.child import Child, ChildSpec
from globalfunc.executor.frame import _ERR, _ERR_EXITING, _HEADER, _OK, _READY
from globalfunc.executor.pool import ChildDied

__all__ = ["DEFAULT_MAX_FRAME", "WorkerHandle"]

Done = Callable[[Any, BaseException | None], None]

_READ_CHUNK = 1 << 16
_READS_PER_TURN = 16  # 1 MiB a loop turn: a worker flooding its pipe cannot hold the loop
DEFAULT_MAX_FRAME = 256 << 20


class WorkerHandle:
    """One worker process; see the module docstring."""

    __slots__ = (
        "_done",
        "_out",
        "_ready",
        "_sent",
        "_writing",
        "broken",
        "buf",
        "child",
        "dead",
        "exiting",
        "loaded",
        "loop",
        "max_frame",
        "rfd",
        "wfd",
    )

    def __init__(self, child: Child, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        assert child.proc.stdin is not None and child.proc.stdout is not None
        self.child = child
        self.wfd = child.proc.stdin.fileno()
        self.rfd = child.proc.stdout.fileno()
        os.set_blocking(self.rfd, False)
        os.set_blocking(self.wfd, False)
        self.buf = bytearray()
        self.loaded: dict[str, str] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[None] | None = None
        self._done: Done | None = None
        self._writing = False
        self._out: memoryview | None = None
        self._sent = 0
        self.dead = False
        self.exiting = False
        self.broken: str | None = None
        self.max_frame = max_frame

    @classmethod
    def spawn(cls, spec: ChildSpec, max_frame: int = DEFAULT_MAX_FRAME) -> WorkerHandle:
        return cls(Child.spawn(spec), max_frame)

    # -- Slot ----------------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ready = loop.create_future()
        loop.add_reader(self.rfd, self._on_readable)

    def detach(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(Exception):  # fd already gone
            loop.remove_reader(self.rfd)
        if self._writing:
            self._writing = False
            with contextlib.suppress(Exception):
                loop.remove_writer(self.wfd)

    async def ready(self) -> None:
        assert self._ready is not None, "attach() first"
        await self._ready

    @property
    def reusable(self) -> bool:
        return not (self.dead or self.exiting or self.broken)

    def start_call(self, job: bytes, done: Done) -> None:
        if self.dead:  # it ended between being handed out and being used: nothing was sent
            done(None, ChildDied(False, self.child.exit_description(0.5)))
            return
        self._done = done
        self._sent = 0
        self._out = memoryview(_HEADER.pack(len(job)) + job)
        self._write()
        if self._out is not None and self._done is not None:
            assert self.loop is not None, "attach() first"
            self.loop.add_writer(self.wfd, self._write)
            self._writing = True

    def on_exit(self) -> None:
        if self.dead:
            return
        with contextlib.suppress(OSError):
            self._read(64)  # an answer written just before the exit still counts
        self.dead = True
        how = self.child.exit_description(0.5)
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_exception(ChildDied(False, f"{how} before it was ready"))
        done, self._done = self._done, None
        if done is not None:
            done(None, ChildDied(self._started(), how))

    def close(self) -> None:
        self.child.close()

    # -- pipes ---------------------------------------------------------------------------
    def _write(self) -> None:
        out = self._out
        if out is None:
            return
        try:
            while out:
                written = os.write(self.wfd, out)
                self._sent += written
                out = out[written:]
        except BlockingIOError:
            self._out = out
            return
        except OSError:  # EPIPE: the worker is gone; its exit settles the call
            self._out = None
            self._stop_writing()
            return
        self._out = None
        self._stop_writing()

    def _stop_writing(self) -> None:
        if self._writing and self.loop is not None:
            self._writing = False
            with contextlib.suppress(Exception):
                self.loop.remove_writer(self.wfd)

    def _started(self) -> bool:
        """Whether the worker read any byte of the call in flight."""
        try:
            raw = fcntl.ioctl(self.wfd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return True  # cannot tell: assume it ran, never run a call twice
        unread: int = struct.unpack("i", raw)[0]
        return self._sent - unread > 0

    def _on_readable(self) -> None:
        try:
            eof = self._read(_READS_PER_TURN)
        except OSError:
            eof = True
        if eof and self.loop is not None:  # the exit watcher settles what is left
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.rfd)

    def _read(self, turns: int | None = None) -> bool:
        """Read what the pipe holds (at most ``turns`` chunks, so one worker cannot hold the
        loop) and hand over complete frames; True at EOF or once the worker broke the protocol."""
        while turns is None or turns > 0:
            if turns is not None:
                turns -= 1
            try:
                chunk = os.read(self.rfd, _READ_CHUNK)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            self.buf += chunk
            while (frame := self._take_frame()) is not None:
                self._deliver(frame)
            if self.broken is not None:
                return True
        return False

    def _take_frame(self) -> bytes | None:
        buf = self.buf
        if len(buf) < 4 or self.broken is not None:
            return None
        (size,) = _HEADER.unpack_from(buf)
        if size > self.max_frame:
            self._break(
                f"sent an answer of {size} bytes, more than the {self.max_frame} a result may "
                "take (GF_MAX_RESULT_MB)"
            )
            return None
        if len(buf) < 4 + size:
            return None
        frame = bytes(buf[4 : 4 + size])
        del buf[: 4 + size]
        return frame

    def _deliver(self, frame: bytes) -> None:
        ready = self._ready
        if frame == _READY and ready is not None and not ready.done():
            ready.set_result(None)
            return
        status = frame[:1]
        if status == _ERR_EXITING:
            self.exiting = True
        elif status == _ERR:
            try:
                orjson.loads(frame[1:])
            except orjson.JSONDecodeError:
                self._break("sent an unreadable error")
                return
        elif status != _OK:
            self._break(f"broke the protocol (an answer starting {frame[:16]!r})")
            return
        done, self._done = self._done, None
        if done is None:  # nobody asked: whatever wrote it is not our worker any more
            self._break("answered when no call was running")
            return
        done(frame, None)

    def _break(self, why: str) -> None:
        """The worker wrote what no worker of ours writes: kill it, fail the call it held."""
        self.broken = why
        self.buf.clear()
        self.child.kill()
        done, self._done = self._done, None
        if done is not None:
            done(None, ChildDied(True, why))
