"""A worker's entry in the directory and a command to one worker, as read from Redis.

:class:`WorkerInfo` is what a worker publishes (name, URL, pid, instance, what it serves,
its calls in flight, whether it is draining); :class:`WorkerCommand` is a ``drain`` or
``stop`` for one worker instance. Readers do not trust what they read:
:meth:`WorkerInfo.from_json` checks every field (the name matches its key, the URL is
http(s) with a host, ``inflight`` is a whole number in 0-:data:`MAX_INFLIGHT`, ...) and
raises ``ValueError`` for a bad entry.

Not here: Redis (:mod:`globalfunc.workers.directory`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import orjson

from globalfunc.errors import InvalidName, StorageError
from globalfunc.workers.name import parse_worker_name, worker_name

__all__ = ["MAX_INFLIGHT", "WorkerCommand", "WorkerInfo", "check_url"]

#: the most calls in flight an entry may claim (a larger count is a bad entry)
MAX_INFLIGHT = 1_000_000


def check_url(url: object) -> str:
    """``url`` if it is an ``http(s)://host[:port][/]`` URL, else ``ValueError`` saying why."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise ValueError(f"url {url!r} is not a string of 1-2048 characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"url {url!r} holds white space or control characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url {url!r} is not http:// or https://")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises for a port that is no number in 0-65535
    except ValueError as exc:
        raise ValueError(f"url {url!r}: {exc}") from None
    if not host or parts.username is not None or parts.query or parts.fragment:
        raise ValueError(f"url {url!r} must be scheme://host[:port]/ with nothing else")
    if parts.path not in ("", "/"):
        raise ValueError(f"url {url!r} has a path; a worker is served at its root")
    if parts.netloc.startswith("[") and not _is_ip(host):
        raise ValueError(f"url {url!r} has a bracketed host that is no IPv6 address")
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _whole(data: dict[str, Any], field: str, low: int, high: int) -> None:
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field} {value!r} is not a whole number in {low}-{high}")


def _check(data: dict[str, Any], expected: str | None) -> None:
    """``ValueError`` unless ``data`` is a plausible entry (of worker ``expected``)."""
    name = data.get("name")
    try:
        parse_worker_name(str(name) if isinstance(name, str) else "")
    except InvalidName as exc:
        raise ValueError(exc.message) from None
    if expected is not None and name != expected:
        raise ValueError(f"its name {name!r} is not its key's {expected!r}")
    check_url(data.get("url"))
    _whole(data, "inflight", 0, MAX_INFLIGHT)
    _whole(data, "port", 1, 65535)
    _whole(data, "pid", 1, 2**31)
    _whole(data, "memory_gb", 0, 2**20)
    _whole(data, "gpu_gb", 0, 2**20)
    for field in ("started_at", "last_seen"):
        value = data.get(field)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{field} {value!r} is not a time")
    if not isinstance(data.get("draining", False), bool):
        raise ValueError(f"draining {data.get('draining')!r} is not true or false")
    for field in ("host", "version", "instance"):
        if not isinstance(data.get(field, ""), str):
            raise ValueError(f"{field} {data.get(field)!r} is not a string")
    for field in ("root", "branch"):
        if data.get(field) is not None and not isinstance(data[field], str):
            raise ValueError(f"{field} {data[field]!r} is not a string")
    packages = data.get("packages")
    if packages is not None and (
        not isinstance(packages, list) or not all(isinstance(p, str) and p for p in packages)
    ):
        raise ValueError(f"packages {packages!r} is not a list of package names")


@dataclass(frozen=True)
class WorkerCommand:
    """A command for one worker instance: ``drain``, or ``stop`` within ``grace`` seconds
    (``None`` or 0: at once)."""

    what: str
    instance: str
    grace: float | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> WorkerCommand | None:
        """The command, or ``None`` for what is none (an old plain ``drain``/``stop``)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        what, instance, grace = data.get("what"), data.get("instance"), data.get("grace")
        if what not in ("drain", "stop") or not isinstance(instance, str):
            return None
        if grace is not None and (
            isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0
        ):
            return None
        return cls(what, instance, None if grace is None else float(grace))


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as it is registered: its name, where to reach it, what it serves."""

    name: str
    host: str
    version: str
    memory_gb: int
    gpu_gb: int
    port: int
    url: str
    pid: int
    started_at: float
    last_seen: float
    root: str | None = None
    branch: str | None = None
    #: the packages it exposes (its allow-list); ``None``: every registered package
    packages: tuple[str, ...] | None = None
    #: its calls in flight at the last heartbeat
    inflight: int = 0
    #: it takes no new calls (``gf workers drain``) and leaves once they are done
    draining: bool = False
    #: this start of the worker (random): commands and entry writes are addressed to it
    instance: str = ""

    @classmethod
    def new(
        cls,
        *,
        host: str,
        version: str,
        memory_gb: int,
        gpu_gb: int,
        port: int,
        url: str,
        root: str | None = None,
        branch: str | None = None,
        packages: list[str] | tuple[str, ...] | None = None,
        pid: int | None = None,
        now: float | None = None,
        instance: str | None = None,
    ) -> WorkerInfo:
        """A worker's entry, its name built (and labels sanitized) by :func:`worker_name`."""
        name = worker_name(host, version, memory_gb, gpu_gb, port)
        parts = parse_worker_name(name)
        now = time.time() if now is None else now
        return cls(
            name=name,
            host=parts.host,
            version=parts.version,
            memory_gb=memory_gb,
            gpu_gb=gpu_gb,
            port=port,
            url=url,
            pid=os.getpid() if pid is None else pid,
            started_at=now,
            last_seen=now,
            root=root,
            branch=branch,
            packages=tuple(packages) if packages is not None else None,
            instance=secrets.token_hex(8) if instance is None else instance,
        )

    def age(self, now: float | None = None) -> float:
        """Seconds since the last heartbeat (by this machine's clock)."""
        return max(0.0, (time.time() if now is None else now) - self.last_seen)

    def seen(self, now: float | None = None) -> WorkerInfo:
        """This entry with ``last_seen`` set to now."""
        return dataclasses.replace(self, last_seen=time.time() if now is None else now)

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    def allows(self, package: str) -> bool:
        """Whether this worker serves ``package`` (its allow-list holds it or a parent)."""
        if self.packages is None:
            return True
        return any(package == p or package.startswith(p + ".") for p in self.packages)

    @classmethod
    def from_json(cls, raw: bytes | str, name: str | None = None) -> WorkerInfo:
        """Parse and check an entry (of worker ``name``, when given); keys a newer
        GlobalFunc added are ignored. :class:`StorageError` for a malformed one."""
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            known = {f.name for f in dataclasses.fields(cls)}
            data = {k: v for k, v in data.items() if k in known}
            _check(data, name)
            if data.get("packages") is not None:
                data["packages"] = tuple(data["packages"])
            return cls(**data)
        except (orjson.JSONDecodeError, TypeError, AttributeError, ValueError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise StorageError(f"a worker entry is malformed: {message}: {raw[:200]!r}") from exc


# -- the directory ------------------------------------------------------------------------------
