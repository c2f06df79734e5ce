"""Storage backends behind one small contract; ``open_storage(url)`` picks one by URL.

``http://`` and ``https://`` URLs (a GlobalFunc server's registry, :mod:`.http`) are
dispatched here, also as the durable half of ``tiered+redis://...|http://...``; every
other scheme by :func:`globalfunc.storage.base.open_storage`.
"""

from __future__ import annotations

from globalfunc.storage import base
from globalfunc.storage.base import DEFAULT_CACHE_TTL, Storage, redact_url

__all__ = ["Storage", "is_http_url", "open_storage", "redact_url"]

_HTTP = ("http://", "https://")


def is_http_url(url: str) -> bool:
    """Whether ``url`` (or its durable half, in the tiered form) names a GlobalFunc server:
    then the edge passes the bearer token (``GF_TOKEN``/``GF_TOKEN_FILE``) down."""
    return url.partition("|")[2].startswith(_HTTP) or url.startswith(_HTTP)


def open_storage(
    url: str,
    *,
    timeout: float = 2.0,
    cache_ttl: float | None = DEFAULT_CACHE_TTL,
    cache_timeout: float | None = None,
    token: str | None = None,
) -> Storage:
    """Open a backend by URL scheme (see :func:`globalfunc.storage.base.open_storage`).

    ``http://host:port`` / ``https://...``: a ``gf serve``'s registry, with ``token`` as its
    bearer token unless the URL carries one (``http://:TOKEN@host:port``).
    """
    if url.startswith(_HTTP):
        from globalfunc.storage.http import HttpStorage

        return HttpStorage(url, token=token, timeout=timeout)
    if url.startswith("tiered+") and is_http_url(url):
        from globalfunc.storage.http import HttpStorage
        from globalfunc.storage.tiered import TieredStorage

        cache_url, _, durable_url = url[len("tiered+") :].partition("|")
        return TieredStorage(
            base.open_storage(cache_url, timeout=cache_timeout or timeout),
            HttpStorage(durable_url, token=token, timeout=timeout),
            ttl=cache_ttl,
        )
    return base.open_storage(url, timeout=timeout, cache_ttl=cache_ttl, cache_timeout=cache_timeout)
