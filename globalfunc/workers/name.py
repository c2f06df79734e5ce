"""Worker names: ``<host>_<version>_<mem>G_<gpu>G_<port>`` (``m7_v101_30G_0G_26000``).

host label ``[A-Za-z0-9-]``, version label ``[A-Za-z0-9.-]``, memory and GPU memory in
whole GiB, then the port; ``_`` only separates the parts, so a name parses back
(:func:`parse_worker_name`). :func:`worker_name` sanitizes the labels it is given
(``m7.lab`` → ``m7-lab``) and refuses what cannot become one.

Not here: what a worker's entry holds (:mod:`globalfunc.workers.directory`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from globalfunc.errors import InvalidName

__all__ = ["WorkerName", "parse_worker_name", "worker_name"]

_HOST_BAD = re.compile(r"[^A-Za-z0-9-]+")
_VERSION_BAD = re.compile(r"[^A-Za-z0-9.-]+")
_NAME = re.compile(r"([A-Za-z0-9-]+)_([A-Za-z0-9.-]+)_(\d+)G_(\d+)G_(\d+)")
_LABEL_MAX = 63


class WorkerName(NamedTuple):
    """The parts of a worker name."""

    host: str
    version: str
    memory_gb: int
    gpu_gb: int
    port: int


def _label(value: str, bad: re.Pattern[str], what: str) -> str:
    label = bad.sub("-", str(value)).strip("-")
    if not label or not any(c.isalnum() for c in label):
        raise InvalidName(
            f"worker {what} {value!r} has no letters or digits to name the worker by; "
            "give a label like 'm7' or 'v101'"
        )
    if len(label) > _LABEL_MAX:
        raise InvalidName(f"worker {what} {value!r} is longer than {_LABEL_MAX} characters")
    return label


def _count(value: int, what: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidName(f"worker {what} must be a whole number >= {low}, got {value!r}")
    if high is not None and value > high:
        raise InvalidName(f"worker {what} must be at most {high}, got {value!r}")
    return value


def worker_name(host: str, version: str, memory_gb: int, gpu_gb: int, port: int) -> str:
    """``<host>_<version>_<mem>G_<gpu>G_<port>``, with the labels sanitized.

    Characters a label may not hold become ``-`` (``m7.lab`` → ``m7-lab``,
    ``0.1.0+dev`` → ``0.1.0-dev``); a label left without letters or digits, a negative
    size or a port outside 1-65535 raises :class:`~globalfunc.errors.InvalidName`.
    """
    return "_".join(
        [
            _label(host, _HOST_BAD, "host label"),
            _label(version, _VERSION_BAD, "version label"),
            f"{_count(memory_gb, 'memory (GiB)')}G",
            f"{_count(gpu_gb, 'GPU memory (GiB)')}G",
            str(_count(port, "port", 1, 65535)),
        ]
    )


def parse_worker_name(name: str) -> WorkerName:
    """The parts of a worker name; :class:`~globalfunc.errors.InvalidName` if it is not one."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None or not 1 <= int(match[5]) <= 65535:
        raise InvalidName(
            f"{name!r} is not a worker name: expected <host>_<version>_<mem>G_<gpu>G_<port>, "
            "e.g. m7_v101_30G_0G_26000"
        )
    host, version, memory, gpu, port = match.groups()
    return WorkerName(host, version, int(memory), int(gpu), int(port))
