"""What the serving process sets on itself, and the listening socket it accepts on.

- :func:`raise_open_files_limit`: the soft ``RLIMIT_NOFILE`` up to the hard one;
- :func:`make_undumpable`: no process of the same user may ptrace this one or read its
  ``/proc`` files (where the token lives);
- :func:`die_with_parent`: a forked server process ends when its supervisor does;
- :class:`PacedSocket`: a listening socket that stops being watched for a moment when the
  process runs out of file descriptors, instead of letting tornado's accept loop spin and
  flood the log.

What it does not do: serve HTTP (:mod:`server.serve`, :mod:`server.http`).
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import time
from typing import Any

import tornado.ioloop

__all__ = [
    "PacedSocket",
    "die_with_parent",
    "make_undumpable",
    "raise_open_files_limit",
    "stop_supervisor",
]

log = logging.getLogger("server.serve")

_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1

_OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_MIN_PAUSE, _MAX_PAUSE, _LOG_EVERY = 0.05, 1.0, 10.0  # seconds


class PacedSocket(socket.socket):
    """A listening socket that stops being watched for a moment when ``accept`` runs out
    of descriptors (or memory).

    tornado's accept handler (``tornado.netutil.add_accept_handler``) lets such an
    ``OSError`` out of the event loop's callback; the socket stays readable, so the loop
    calls it again at once: a spin at full CPU and one traceback per try. Here ``accept``
    turns it into "nothing to accept" (``BlockingIOError``, which ends tornado's accept
    loop quietly), takes the socket off the loop for ``pause`` seconds (doubling to
    :data:`_MAX_PAUSE` while it lasts), and logs one line per :data:`_LOG_EVERY` seconds.
    The waiting connections stay in the kernel's backlog and are taken when it resumes.
    """

    _pause: float
    _refused: int
    _logged: float

    @classmethod
    def wrap(cls, sock: socket.socket) -> PacedSocket:
        paced = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        paced.setblocking(False)
        paced._pause, paced._refused, paced._logged = _MIN_PAUSE, 0, -_LOG_EVERY
        return paced

    def accept(self) -> tuple[socket.socket, Any]:
        try:
            conn, address = super().accept()
        except OSError as exc:
            if exc.errno not in _OUT_OF_FILES:
                raise
            self._back_off(exc)
            raise BlockingIOError(errno.EAGAIN, "paused: out of descriptors") from exc
        self._pause = _MIN_PAUSE
        return conn, address

    def _back_off(self, exc: OSError) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY:
            log.warning(
                "cannot accept connections: %s (open files limit %s; %d failed accepts "
                "in the last %.0fs); pausing accepts for %.2fs at a time until "
                "descriptors free up",
                exc.strerror or exc,
                _open_files_limit(),
                self._refused,
                min(now - self._logged, _LOG_EVERY),
                self._pause,
            )
            self._logged, self._refused = now, 0
        loop = tornado.ioloop.IOLoop.current()
        loop.update_handler(self, 0)  # handler kept, socket not watched
        loop.call_later(self._pause, self._resume)
        self._pause = min(self._pause * 2, _MAX_PAUSE)

    def _resume(self) -> None:
        if self.fileno() != -1:  # not closed by server.stop() meanwhile
            tornado.ioloop.IOLoop.current().update_handler(self, tornado.ioloop.IOLoop.READ)


def _open_files_limit() -> str:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return "unknown"
    return f"{soft}" if soft == hard else f"{soft} of at most {hard}"


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one: every connection, worker pipe
    and database handle takes a descriptor, and the soft default (often 1024) is the
    first thing a busy server runs out of."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY:
            return
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.debug("open files limit raised from %d to %d", soft, hard)
    except (ImportError, OSError, ValueError) as exc:
        log.debug("cannot raise the open files limit: %s", exc)


def stop_supervisor(signum: int, frame: object) -> None:
    raise SystemExit(0)


def die_with_parent() -> None:
    """A forked server process gets SIGTERM when its supervisor dies (Linux prctl)."""
    if not _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM)):
        log.debug("prctl unavailable; forked processes will not follow a killed supervisor")


def make_undumpable() -> None:
    """Linux: no core dumps, and no ptrace or ``/proc/<pid>/environ``/``mem`` reads by
    other processes of the same user (root can still). Inherited by forked server
    processes; a process started with exec (an isolated worker) starts dumpable again."""
    if not _prctl(_PR_SET_DUMPABLE, 0):
        log.debug("prctl(PR_SET_DUMPABLE, 0) unavailable; same-user processes can read ours")


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
