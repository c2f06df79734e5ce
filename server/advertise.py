"""The address a worker advertises in the directory: ``--advertise`` checked, and never a
loopback address for a non-loopback bind.

:func:`parse_advertise` reads ``HOST``, ``HOST:PORT``, ``[V6]``, ``[V6]:PORT``, a bare
IPv6 address or ``http(s)://HOST[:PORT]/``; :func:`advertised_url` turns the URL a worker
listens on into the one clients use: behind ``0.0.0.0`` the machine's name when it
resolves to a non-loopback address, else the local address of the route to Redis, else a
:class:`~globalfunc.errors.ConfigError` asking for ``--advertise``.

Not here: binding, registering, serving (:mod:`server.worker`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse

from globalfunc.errors import ConfigError
from globalfunc.workers import check_url

__all__ = ["advertised_url", "bracketed", "is_loopback", "parse_advertise", "unbracketed"]

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ADVERTISE_HELP = (
    "give a host name or IP address, optionally with :PORT ([v6] in brackets then), or a "
    "URL http(s)://HOST[:PORT]/"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) reaches only this machine.

    An empty host, ``0.0.0.0`` and ``::`` listen everywhere; a name counts as loopback only
    if every address it resolves to is a loopback one.
    """
    name = host.strip().strip("[]")
    if not name:
        return False
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # cannot tell: bind will fail or reach an unknown address
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


def _address_towards(host: str, port: int) -> str | None:
    """The local address this machine uses to reach ``host:port`` (no packet is sent)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.connect(address)
            return str(sock.getsockname()[0])
    except OSError:
        return None


def _host_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(p) for p in name.split("."))


def parse_advertise(value: str) -> tuple[str | None, str, int | None]:
    """``(scheme, host, port)`` of an ``--advertise`` value: ``HOST``, ``HOST:PORT``,
    ``[V6]``, ``[V6]:PORT``, a bare IPv6 address, or ``http(s)://HOST[:PORT][/]`` (a URL
    is taken as it is: without a port, its scheme's). ``scheme`` and ``port`` are ``None``
    where the value gives none (the worker's own). :class:`ConfigError` names the value."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"--advertise {value!r} {why}; {_ADVERTISE_HELP}")

    if not isinstance(value, str) or not value.strip():
        raise bad("is empty")
    if "://" in value:
        try:
            check_url(value)
        except ValueError as exc:
            raise bad(f"is not a usable URL ({exc})") from None
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname or ""
        if not _host_ok(host):
            raise bad("has no valid host name or IP address")
        return parts.scheme, host, parts.port or (443 if parts.scheme == "https" else 80)
    text, port_text = value, None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise bad("is not [IPv6] or [IPv6]:PORT")
        port_text = rest[1:] if rest else None
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise bad("holds no IPv6 address in its brackets") from None
    elif value.count(":") > 1:
        host = value  # a bare IPv6 address
        if not _host_ok(host):
            raise bad("is no IPv6 address (give [V6]:PORT for one with a port)")
    else:
        host, sep, port_text = text.partition(":")
        port_text = port_text if sep else None
        if not _host_ok(host):
            raise bad("is not a host name or IP address")
    port = None
    if port_text is not None:
        port = int(port_text) if port_text.isdigit() else 0
        if not 1 <= port <= 65535:
            raise bad(f"has port {port_text!r}, not one in 1-65535")
    return None, host, port


def advertised_url(url: str, advertise: str | None, redis_url: str | None = None) -> str:
    """The URL clients use: ``url`` with its host replaced by ``advertise`` (see
    :func:`parse_advertise`); behind a wildcard address, by this machine's name, or (when
    that name resolves to a loopback address) by the local address of the route to Redis.
    A loopback address is never advertised for a non-loopback bind: :class:`ConfigError`
    asks for ``--advertise`` (or names the loopback one given)."""
    parts = urllib.parse.urlsplit(url)
    bound = parts.hostname or ""
    host: str | None = None
    scheme, port = parts.scheme, parts.port
    if advertise is not None:
        given_scheme, host, given_port = parse_advertise(advertise)
        scheme, port = given_scheme or scheme, given_port or port
        if is_loopback(host) and not is_loopback(bound):
            raise ConfigError(
                f"--advertise {advertise!r} is a loopback address but this worker listens on "
                f"{bound or '*'}: clients elsewhere would reach themselves, not it; advertise "
                "the name or address other machines reach this one at, or listen on "
                "127.0.0.1 (--host) for a worker only this machine uses"
            )
    if host is None and bound in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
        if is_loopback(host):
            target = urllib.parse.urlsplit(redis_url or "")
            towards = (
                _address_towards(target.hostname, target.port or 6379) if target.hostname else None
            )
            if towards is None or is_loopback(towards):
                raise ConfigError(
                    f"this worker listens on {bound or '*'} but its machine name {host!r} "
                    "resolves to a loopback address, and so does the route to Redis: clients "
                    "elsewhere could not reach it; pass --advertise HOST (the name or address "
                    "other machines reach this one at)"
                )
            host = towards
    if host is None:
        return url
    return urllib.parse.urlunsplit(
        parts._replace(scheme=scheme, netloc=f"{bracketed(host)}:{port}", path="/")
    )


def unbracketed(host: str) -> str:
    """``host`` without the brackets of a ``[IPv6]`` literal (sockets take it bare)."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def bracketed(host: str) -> str:
    """``host`` as a URL's host: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
