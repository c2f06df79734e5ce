"""What a key's entry in Redis says, and the checks every reader and writer shares.

An entry is ``R<owner>`` while a worker runs the key, or ``D<status><body>`` once its
outcome is recorded (the HTTP status as three digits, then the answer's body: the result,
or the error as JSON). This module parses and builds entries, checks keys and TTLs, and
holds the two Lua scripts that change an entry only if it is still the one a request saw.

Not here: talking to Redis (:mod:`globalfunc.idempotency.record`), deciding what a
request does with an entry (:mod:`globalfunc.idempotency.guard`).
"""

from __future__ import annotations

import orjson

from globalfunc.errors import ConfigError, InvalidRequest, error_from_dict

__all__ = ["DEFAULT_TTL", "Outcome", "check_key", "done_entry", "running_entry", "ttl_ms"]

DEFAULT_TTL = 600.0
KEY_MAX = 200

# replace the claim only if it is still the one we saw (a dead worker's)
TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# drop the claim only if it is still ours (nothing ran; the next try should run)
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Outcome:
    """What a key's entry says: ``running`` (by ``owner``), or ``done`` (status, body)."""

    __slots__ = ("body", "owner", "raw", "status")

    def __init__(
        self, raw: bytes, owner: str | None, status: int | None, body: bytes | None
    ) -> None:
        self.raw = raw
        self.owner = owner
        self.status = status
        self.body = body

    @property
    def running(self) -> bool:
        return self.owner is not None

    @classmethod
    def parse(cls, raw: bytes) -> Outcome:
        if raw[:1] == b"R":
            return cls(raw, raw[1:].decode("utf-8", "replace"), None, None)
        return cls(raw, None, int(raw[1:4]), raw[4:])

    def answer(self) -> bytes:
        """The recorded result, or the recorded error raised again."""
        assert self.status is not None and self.body is not None
        if self.status == 200:
            return self.body
        raise error_from_dict(orjson.loads(self.body), self.status)


def running_entry(owner: str) -> bytes:
    """The entry that says ``owner`` runs the key."""
    return b"R" + owner.encode()


def done_entry(status: int, body: bytes) -> bytes:
    """The entry that records an outcome."""
    return b"D%03d" % status + body


def check_key(key: str) -> str:
    """``key`` if it can be an idempotency key (1-200 visible ASCII characters)."""
    if not (0 < len(key) <= KEY_MAX) or not all("!" <= c <= "~" for c in key):
        raise InvalidRequest(
            f"Idempotency-Key {key[:60]!r} must be 1-{KEY_MAX} visible ASCII characters; "
            "the client makes one per call (a UUID) when none is given"
        )
    return key


def ttl_ms(ttl: float) -> int:
    """``ttl`` seconds as the milliseconds Redis takes; a non-positive TTL is refused."""
    if not ttl > 0:
        raise ConfigError(f"GF_IDEMPOTENCY_TTL must be positive seconds, got {ttl!r}")
    return max(1, int(ttl * 1000))
