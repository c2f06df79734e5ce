"""redis-py's errors turned into GlobalFunc's, for every part that talks to Redis (the
storage backend, the idempotency record, the worker directory).

Not here: connections, retries (each caller's own).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from globalfunc.errors import StorageError, StorageUnavailable

__all__ = ["redis_errors"]


@contextmanager
def redis_errors(url: str, what: str, role: str = "") -> Iterator[None]:
    """Turn redis-py's errors inside into ours: :class:`StorageUnavailable` when Redis cannot
    be reached, :class:`StorageError` otherwise; ``role`` says what this Redis is for."""
    where = f"Redis at {url}{f' ({role})' if role else ''}"
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StorageUnavailable(
            f"{where} is unreachable while trying to {what}: {exc}; "
            "check that redis-server is running and the URL is right",
            url=url,
        ) from exc
    except redis.RedisError as exc:
        raise StorageError(f"{where} failed to {what}: {exc}", url=url) from exc
