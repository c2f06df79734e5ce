"""Is the worker that claimed a key still alive? Asked by a request waiting on that key.

A claim names its owner as ``"<worker name> <instance>"`` (the random id of one start of
the worker, so a restart with the same name and pid is another owner). The owner is alive
while the worker directory lists that name with that instance (the caller's ``find`` looks it up and answers its
URL) and its port accepts a TCP connection. Both checks block: call
:func:`owner_alive` in a thread, never on the event loop.

Not here: the worker directory itself (``globalfunc.workers``), what a waiting request
does when the owner is dead (:mod:`globalfunc.idempotency.guard`).
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Callable

__all__ = ["owner_alive", "port_open"]


def port_open(url: str, timeout: float) -> bool:
    """Whether ``url``'s host and port accept a TCP connection within ``timeout`` s."""
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def owner_alive(owner: str, find: Callable[[str], str | None], timeout: float) -> bool:
    """Whether the worker ``owner`` is registered (``find(owner)`` is its URL, else
    ``None``) and answers on its port."""
    url = find(owner)
    return url is not None and port_open(url, timeout)
