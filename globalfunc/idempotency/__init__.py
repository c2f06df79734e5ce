"""Run each call once per idempotency key, across every worker sharing a Redis.

A client sends every call with an ``Idempotency-Key``. A worker that receives one first
*claims* the key in Redis (``SET gf:idem:<key> R<worker> <instance> <request#> NX GET``),
runs the call, and *records* its outcome under the same key for ``ttl`` seconds
(``GF_IDEMPOTENCY_TTL``, default 600). A second request with that key, on any worker,
gets the recorded answer, waits for the live worker running it, or takes over the key of
a worker that died mid-call and runs it again (the one case in which a function runs
twice).

One job per module:

- :mod:`~globalfunc.idempotency.entry`: what a key's entry says; key and TTL checks.
- :mod:`~globalfunc.idempotency.record`: the entries in Redis: :class:`OutcomeRecord`
  (synchronous, for clients) and :class:`AsyncOutcomeRecord` (``redis.asyncio`` on the
  worker's event loop: one round trip before a keyed call runs, outcomes pipelined with
  the next claim, 503 :class:`~globalfunc.errors.StorageUnavailable` past the timeout).
- :mod:`~globalfunc.idempotency.liveness`: is the worker that claimed a key alive?
- :mod:`~globalfunc.idempotency.guard`: :class:`CallGuard`, what a worker's request does
  (count in flight, refuse while draining, claim, run or wait, record); one per process,
  installed by the worker (:func:`install`); ``gf serve`` installs none, so there keys
  are ignored and the call path is untouched.

Not here: choosing keys and resending (:mod:`globalfunc.client`), the worker's life
(``server.worker``). Nothing here reads settings.
"""

from __future__ import annotations

from globalfunc.idempotency.entry import DEFAULT_MAX_RESULT, DEFAULT_TTL, Outcome, check_key
from globalfunc.idempotency.guard import CallGuard, current, install
from globalfunc.idempotency.record import AsyncOutcomeRecord, OutcomeRecord

__all__ = [
    "DEFAULT_MAX_RESULT",
    "DEFAULT_TTL",
    "AsyncOutcomeRecord",
    "CallGuard",
    "Outcome",
    "OutcomeRecord",
    "check_key",
    "current",
    "install",
]
