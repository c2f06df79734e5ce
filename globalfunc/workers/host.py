"""Host probes for a worker: the memory it may use and a free port to listen on.

:func:`machine_memory_mb` reads the cgroup limit (a container's cap) or the RAM;
:func:`memory_gb` turns it into the whole GiB of a worker name; :func:`pick_port` finds
the first port of a range that can be bound now (:func:`parse_port_range` reads
``GF_WORKER_PORTS``). Nothing here binds a port for good or reads settings: serving is
``server.worker``'s job.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from globalfunc.errors import ConfigError

__all__ = ["DEFAULT_PORTS", "machine_memory_mb", "memory_gb", "parse_port_range", "pick_port"]

DEFAULT_PORTS = (26000, 27000)


def machine_memory_mb() -> int | None:
    """MiB this process may use: its cgroup's limit when one is set, else the physical RAM.

    cgroup v2 ``memory.max`` first, then v1 ``memory.limit_in_bytes`` (a container's cap);
    ``None`` when neither the cgroup nor ``sysconf`` says.
    """
    limits = []
    for path in (
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ):
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text().strip()
            if text != "max":
                limits.append(int(text) // (1 << 20))
    with contextlib.suppress(OSError, ValueError, AttributeError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20))
    # cgroup v1 reports "no limit" as a huge number: the smallest figure is the real cap
    positive = [m for m in limits if m > 0]
    return min(positive) if positive else None


def memory_gb(mb: int | None) -> int:
    """MiB as the whole GiB of a worker name: rounded, at least 1 (``None``: 0, unknown)."""
    if mb is None or mb <= 0:
        return 0
    return max(1, round(mb / 1024))


def parse_port_range(text: str) -> tuple[int, int]:
    """``"26000-27000"`` (or one port, ``"26000"``) as ``(first, last)``, inclusive."""
    first, sep, last = str(text).strip().partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        low = high = -1
    if not (1 <= low <= high <= 65535):
        raise ConfigError(
            f"port range {text!r} must look like FIRST-LAST with 1 <= FIRST <= LAST <= 65535, "
            "e.g. 26000-27000"
        )
    return low, high


def _bindable(host: str, port: int) -> bool:
    """Whether a listening socket could bind ``host:port`` now, as tornado's bind would."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except OSError:
        return False
    seen = set()
    for family, kind, proto, _, address in infos:
        if (family, address[:2]) in seen:
            continue
        seen.add((family, address[:2]))
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError:
            return False
    return True


def pick_port(host: str, first: int, last: int) -> int:
    """The first port in ``first..last`` that ``host`` can listen on now.

    Another process may take it before the caller binds it: callers bind, and on
    "address in use" ask again from the next port. :class:`ConfigError` when every port
    in the range is taken.
    """
    for port in range(first, last + 1):
        if _bindable(host, port):
            return port
    raise ConfigError(
        f"no free port in {first}-{last} on {host or '*'}: every one is in use; widen the "
        "range (GF_WORKER_PORTS / --ports) or stop a worker"
    )
