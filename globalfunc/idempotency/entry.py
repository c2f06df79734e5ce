"""What a key's entry in Redis says, and the checks every reader and writer shares.

A key's Redis name is ``<prefix>idem:<scope>:<key>``: ``scope`` is the caller's
credential (the first 32 hex digits of the sha256 of its bearer token, never the token;
``anonymous`` without one), so one caller never reads another's outcome by guessing a key.
Every entry starts with a kind letter and the call's *fingerprint* (32 hex digits of the
sha256 of the function name and its canonical arguments, :func:`fingerprint`), so a key
reused for another call is told apart without another round trip:

- ``R<fp><owner>``: a request runs it; ``owner`` is ``"<worker name> <instance> <request#>"``
  (one per request, so two requests of one worker are never taken for each other;
  ``instance`` is one start of the worker, so a restart is never taken for it);
  ``C<fp><owner>``: the same for a key the client made up (kept
  :data:`CLIENT_KEY_TTL` s): the first claim decides how long a key is kept, and a later
  request (a take-over) keeps that, whatever its own headers say;
- ``D<fp><status><body>``: its outcome (the HTTP status as three digits, then the answer's
  body: the result, or the error as JSON);
- ``N<fp><status><size>``: it ran, but its answer (``size`` bytes) was too large to keep.

This module parses and builds entries, checks keys and TTLs, and holds the Lua scripts
that change an entry only if it is still the one a request saw.

Not here: talking to Redis (:mod:`globalfunc.idempotency.record`), deciding what a
request does with an entry (:mod:`globalfunc.idempotency.guard`).
"""

from __future__ import annotations

import hashlib

import orjson

from globalfunc.errors import (
    BadIdempotencyKey,
    ConfigError,
    IdempotencyKeyReused,
    ResultNotKept,
    error_from_dict,
)

__all__ = [
    "CLIENT_KEY_TTL",
    "DEFAULT_MAX_RESULT",
    "DEFAULT_TTL",
    "CallKey",
    "Outcome",
    "check_key",
    "done_entry",
    "fingerprint",
    "running_entry",
    "scope_of",
    "ttl_ms",
]

DEFAULT_TTL = 600.0
CLIENT_KEY_TTL = 60.0  # seconds a key the client made up itself is kept (its own resends)
DEFAULT_MAX_RESULT = 1024 * 1024  # bytes of an answer kept for resends
KEY_MAX = 200
CANONICAL_MAX = 64 * 1024  # bodies up to this size are compared as canonical JSON
ANONYMOUS = "anonymous"
_FP = 32  # hex digits of a fingerprint
_NO_FP = b"0" * _FP

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
# keep the claim alive while its call runs, only if it is still this request's; a claim
# that expired meanwhile (Redis unreachable past the TTL) is set again: 1 renewed, 2 set
# again, else the entry that holds the key now
RENEW = """
local now = redis.call('GET', KEYS[1])
if now == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not now then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return now
"""


class CallKey(str):
    """A request's idempotency key (the string) with what scopes and identifies it.

    ``scope``: the caller's credential hash (:func:`scope_of`); ``fp``: the call's
    fingerprint (:func:`fingerprint`); ``client_made``: the client made the key up itself
    (it is kept :data:`CLIENT_KEY_TTL` s at most). :attr:`name` is the Redis name's tail.
    """

    scope: str
    fp: bytes
    client_made: bool

    def __new__(
        cls, key: str, *, scope: str = ANONYMOUS, fp: bytes = _NO_FP, client_made: bool = False
    ) -> CallKey:
        made = super().__new__(cls, key)
        made.scope = scope
        made.fp = fp
        made.client_made = client_made
        return made

    @property
    def name(self) -> str:
        return f"{self.scope}:{self}"


class Outcome:
    """What a key's entry says: ``running`` (by ``owner``), or ``done`` (status, body).

    ``short``: a running entry of a key the client made up (kept
    :data:`CLIENT_KEY_TTL` s), as its first claim decided."""

    __slots__ = ("body", "fp", "kept", "owner", "raw", "short", "status")

    def __init__(
        self,
        raw: bytes,
        fp: bytes,
        owner: str | None,
        status: int | None,
        body: bytes | None,
        kept: bool = True,
        short: bool = False,
    ) -> None:
        self.raw = raw
        self.short = short
        self.fp = fp
        self.owner = owner
        self.status = status
        self.body = body
        self.kept = kept

    @property
    def running(self) -> bool:
        return self.owner is not None

    @property
    def worker(self) -> str:
        """The owner without its request number: ``"<worker name> <instance>"``."""
        assert self.owner is not None
        return self.owner.rsplit(" ", 1)[0]

    @classmethod
    def parse(cls, raw: bytes) -> Outcome:
        kind, fp, rest = raw[:1], raw[1 : 1 + _FP], raw[1 + _FP :]
        if kind in (b"R", b"C"):
            return cls(raw, fp, rest.decode("utf-8", "replace"), None, None, short=kind == b"C")
        return cls(raw, fp, None, int(rest[:3]), rest[3:], kept=kind == b"D")

    def check(self, key: CallKey) -> None:
        """:class:`IdempotencyKeyReused` when this entry is another call's."""
        if self.fp != key.fp:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {str(key)[:60]!r} was first used for another call (another "
                "function or other arguments); its outcome is not this call's. Use a new key "
                "for each distinct call",
                key=str(key)[:200],
            )

    def answer(self, key: str = "") -> bytes:
        """The recorded result, or the recorded error raised again."""
        assert self.status is not None and self.body is not None
        if not self.kept:
            raise ResultNotKept(
                f"the call with Idempotency-Key {key[:60]!r} ran (HTTP {self.status}), but its "
                f"answer ({int(self.body or b'0')} bytes) was larger than the workers keep "
                "(GF_IDEMPOTENCY_MAX_RESULT_KB); return a smaller result, or call without "
                "reusing a key",
                key=key[:200],
                status=self.status,
                size=int(self.body or b"0"),
            )
        if self.status == 200:
            return self.body
        raise error_from_dict(orjson.loads(self.body), self.status)


def running_entry(fp: bytes, owner: str, short: bool = False) -> bytes:
    """The entry that says ``owner`` (one request) runs the call ``fp``; ``short``: the
    key is the client's own, kept :data:`CLIENT_KEY_TTL` s."""
    return (b"C" if short else b"R") + fp + owner.encode()


def done_entry(fp: bytes, status: int, body: bytes, max_result: int | None = None) -> bytes:
    """The entry that records an outcome; only its size when ``body`` is over ``max_result``."""
    if max_result is not None and len(body) > max_result:
        return b"N" + fp + b"%03d%d" % (status, len(body))
    return b"D" + fp + b"%03d" % status + body


def check_key(key: str) -> str:
    """``key`` if it can be an idempotency key (1-200 visible ASCII characters), else
    :class:`~globalfunc.errors.BadIdempotencyKey`. Clients and workers both check."""
    if (
        not isinstance(key, str)
        or not (0 < len(key) <= KEY_MAX)
        or not all("!" <= c <= "~" for c in key)
    ):
        raise BadIdempotencyKey(
            f"Idempotency-Key {str(key)[:60]!r} must be 1-{KEY_MAX} visible ASCII characters "
            "(no spaces, newlines, NUL or non-ASCII); leave it out and the client makes one "
            "per call (a UUID)"
        )
    return key


def scope_of(authorization: str | None) -> str:
    """The scope of a caller's keys: a hash of its bearer token (never the token itself),
    ``anonymous`` without one."""
    if not authorization:
        return ANONYMOUS
    token = authorization[7:] if authorization[:7].lower() == "bearer " else authorization
    return hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).hexdigest()[:32]


def fingerprint(function: str, args: object, kwargs: object, raw: bytes = b"") -> bytes:
    """32 hex digits identifying a call: its function name (as asked, a pinned version
    included) and its arguments as canonical JSON (keys sorted). Bodies over
    :data:`CANONICAL_MAX` bytes are compared byte for byte (``raw``) instead, so a large
    body is not encoded again. Positional and keyword forms of one call differ."""
    digest = hashlib.sha256(function.encode("utf-8", "surrogateescape") + b"\0")
    if len(raw) > CANONICAL_MAX:
        digest.update(b"raw\0" + raw)
    else:
        try:
            digest.update(orjson.dumps([args, kwargs], option=orjson.OPT_SORT_KEYS))
        except (TypeError, orjson.JSONEncodeError):  # ints past 64 bits, ...
            digest.update(b"raw\0" + raw)
    return digest.hexdigest()[:_FP].encode()


def ttl_ms(ttl: float) -> int:
    """``ttl`` seconds as the milliseconds Redis takes; a non-positive TTL is refused."""
    if not ttl > 0:
        raise ConfigError(f"GF_IDEMPOTENCY_TTL must be positive seconds, got {ttl!r}")
    return max(1, int(ttl * 1000))
