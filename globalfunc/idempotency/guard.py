"""The call guard: a worker's calls counted in flight, refused while draining, and run at
most once per idempotency key across every worker that shares a Redis.

A keyed call (a :class:`~globalfunc.idempotency.entry.CallKey`: the key, its caller's
scope, the call's fingerprint) first claims its key (:meth:`AsyncOutcomeRecord.claim
<globalfunc.idempotency.record.AsyncOutcomeRecord.claim>`, one round trip) in the name of
this request alone (``"<worker> <instance> <request#>"``), then:

- nothing was there: it runs (its claim renewed every third of the TTL while it runs, so
  a long call keeps it; a claim that expired meanwhile, Redis being unreachable longer
  than the TTL, is set again unless another request holds the key now), and its outcome is recorded after the answer goes out (the call
  stays counted in flight until Redis has it, so a drain waits for it; an outcome Redis
  refused is written again every 0.5 s for up to a minute, and until then this worker
  answers "running, alive" for it, so duplicates wait for it rather than run it again);
- the entry is another call's (another function or arguments): 422
  ``IdempotencyKeyReused``, nothing ran;
- an outcome was there: the recorded answer (``ResultNotKept`` if it was too large to
  keep), without running;
- another request runs it: wait for that outcome (looking at Redis after 20 ms, then
  doubling to every 500 ms); if the request's worker is dead
  (:mod:`globalfunc.idempotency.liveness`; for this worker: the request is over), take
  the claim over and run it again; if this request's own caller has left (``gone()``),
  stop waiting: :class:`~globalfunc.errors.ClientGone`, nothing runs for it;
- Redis did not answer within the timeout: 503 ``StorageUnavailable``, nothing ran, and
  the claim Redis may still take late is dropped in the background.

A refusal that ran nothing (an HTTP 503) drops the claim instead of recording it. A call
the server stopped while it ran (``Interrupted``) keeps its claim: it may have run in
part, and a duplicate takes it over once this worker is gone.
One guard per process, installed by the worker (:func:`install`); ``gf serve`` installs
none. Not here: talking to Redis (:mod:`globalfunc.idempotency.record`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

import orjson

from globalfunc.errors import ClientGone, GlobalFuncError, Interrupted, Overloaded
from globalfunc.idempotency.entry import CallKey, Outcome, check_key
from globalfunc.idempotency.liveness import owner_alive
from globalfunc.idempotency.record import AsyncOutcomeRecord

__all__ = ["CallGuard", "Run", "current", "install"]

log = logging.getLogger(__name__)

_POLL = 0.02  # seconds before the first look at a key another request is running
_POLL_MAX = 0.5  # ... doubling up to this
_PROBE_EVERY = 1.0  # seconds between checks that the worker running it is alive
_UNCLAIM_EVERY = 0.5  # seconds between tries to drop a claim a failed request may have left
_UNCLAIM_TRIES = 120
_RECORD_EVERY = 0.5  # seconds between tries to write an outcome Redis refused
_RECORD_TRIES = 120
_RENEW_RETRY = 0.2  # seconds before trying a failed renewal again

Run = Callable[[], "bytes | Awaitable[bytes]"]
Gone = Callable[[], bool]  # True once the caller has disconnected


class CallGuard:
    """A worker's calls: in flight, draining, and run once per key (see the module).

    ``owner`` is ``"<worker name> <instance>"``; ``alive(owner)`` is that worker's URL while
    that instance is registered (the worker directory), else ``None``; it may block (it
    runs in a thread).
    """

    def __init__(
        self,
        record: AsyncOutcomeRecord,
        *,
        alive: Callable[[str], str | None],
        probe_timeout: float = 1.0,
    ) -> None:
        self.record = record
        self.owner = f"unnamed {id(self)}"
        self._alive = alive  # owner -> its URL while registered, else None
        self.probe_timeout = probe_timeout
        self.inflight = 0
        self.draining: str | None = None  # why new calls are refused
        # the claim tokens of this process's requests still at work (claiming, waiting,
        # running, recording): a claim of this worker's whose token is not here is stale
        # (a claim Redis took after its request gave up on it) and a new request takes it over
        self._mine: set[str] = set()
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the hook Invoker.submit calls ------------------------------------------------------
    def submit(
        self, key: str | None, run: Run, gone: Gone | None = None
    ) -> bytes | Awaitable[bytes]:
        if self.draining is not None:
            raise Overloaded(
                f"this worker is {self.draining}: it takes no new calls; send the call to "
                "another worker (GFClient.from_workers does)",
                retry_after=1,
            )
        if key is None:
            self.inflight += 1
            try:
                out = run()
            except BaseException:
                self.inflight -= 1
                raise
            if isinstance(out, bytes):
                self.inflight -= 1
                return out
            return self._counted(out)
        check_key(key)
        call = key if isinstance(key, CallKey) else CallKey(key)
        self.inflight += 1
        return self._keyed(call, run, gone)

    async def _counted(self, pending: Awaitable[bytes]) -> bytes:
        try:
            return await pending
        finally:
            self.inflight -= 1

    async def _keyed(self, key: CallKey, run: Run, gone: Gone | None) -> bytes:
        token = f"{self.owner} {next(self._seq)}"  # this request's claim, no other's
        self._mine.add(token)  # before the claim: a twin request sees it alive at once
        try:
            try:
                seen = await self.record.claim(key, token)
            except GlobalFuncError as exc:
                log.warning("key %s: refused (503), nothing ran: %s", key, exc.message)
                self._background(self._unclaim(key, token))
                raise
            except BaseException:
                self._mine.discard(token)
                raise
            try:
                while seen is not None:
                    seen.check(key)
                    if not seen.running:
                        self._mine.discard(token)
                        return seen.answer(key)
                    seen = await self._wait(key, seen, token, gone)
            except BaseException:
                self._mine.discard(token)  # it will not run here
                raise
            return await self._run(key, token, run)  # _run lets go of the token
        finally:
            self.inflight -= 1

    async def _wait(
        self, key: CallKey, seen: Outcome, token: str, gone: Gone | None
    ) -> Outcome | None:
        """Wait on a key another request runs; ``None`` once this request owns it;
        :class:`ClientGone` when ``gone()`` says the caller left (checked before every
        step that could make this request run it)."""
        probed = -_PROBE_EVERY
        pause = _POLL
        while True:
            self._check_caller(key, seen, gone)
            now = time.monotonic()
            if now - probed >= _PROBE_EVERY:
                probed = now
                assert seen.owner is not None
                if seen.worker == self.owner:  # this worker knows without asking
                    dead = seen.owner not in self._mine
                else:
                    dead = not await asyncio.to_thread(
                        owner_alive, seen.worker, self._alive, self.probe_timeout
                    )
                if dead:
                    self._check_caller(key, seen, gone)  # the probe may have taken a second
                if dead and await self.record.take_over(key, seen, token):
                    log.warning(
                        "key %s: its worker %s died mid-call; running it again", key, seen.owner
                    )
                    return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX)
            self._check_caller(key, seen, gone)
            current = await self.record.look(key)
            if current is None:  # released (nothing ran) or expired: claim it
                self._check_caller(key, seen, gone)
                claimed = await self.record.claim(key, token)
                if claimed is None:
                    return None
                current = claimed
            if not current.running or current.raw != seen.raw:
                return current
            seen = current

    @staticmethod
    def _check_caller(key: CallKey, seen: Outcome, gone: Gone | None) -> None:
        if gone is not None and gone():
            log.info("key %s: its caller left while it waited on %s; nothing ran", key, seen.owner)
            raise ClientGone(
                f"the caller of key {key} left while it waited on {seen.owner}; nothing ran"
            )

    async def _run(self, key: CallKey, token: str, run: Run) -> bytes:
        stop_renewing = self._renewing(key, token)
        try:
            try:
                out = run()
                if not isinstance(out, bytes):
                    out = await out
            finally:
                stop_renewing()  # before a release: a renewal must not set the claim again
        except Interrupted:  # it may have run in part: the claim stays (see the module)
            self._mine.discard(token)
            log.warning("key %s: the server stopped while it ran; its claim stays", key)
            raise
        except GlobalFuncError as err:
            if err.http_status == 503:  # nothing ran: the next try should run
                await self._forget(key, token)
            else:
                self._keep(key, token, err.http_status, orjson.dumps(err.to_dict()))
            raise
        except BaseException:
            await self._forget(key, token)
            raise
        self._keep(key, token, 200, out)
        return out

    def _renewing(self, key: CallKey, token: str) -> Callable[[], None]:
        """Renew ``token``'s claim every third of the TTL while its call runs (a timer
        only: a call shorter than that costs no round trip); the function that stops it."""
        loop = asyncio.get_running_loop()
        every = self.record.renew_every(key)
        task: list[asyncio.Task[None]] = []

        def start() -> None:
            task.append(asyncio.ensure_future(self._renew(key, token, every)))

        timer = loop.call_later(every, start)

        def stop() -> None:
            timer.cancel()
            if task:
                task[0].cancel()

        return stop

    async def _renew(self, key: CallKey, token: str, every: float) -> None:
        while True:
            pause = every
            try:
                now = await self.record.renew(key, token)
            except GlobalFuncError as exc:
                log.warning("key %s: its claim was not renewed: %s", key, exc.message)
                pause = min(every, _RENEW_RETRY)  # before the claim expires, if Redis is back
            else:
                if now == "restored":
                    log.warning(
                        "key %s: its claim expired while the call ran (Redis unreachable "
                        "longer than the TTL) and was set again",
                        key,
                    )
                elif isinstance(now, Outcome):
                    log.error(
                        "key %s: its claim expired while the call ran (Redis unreachable "
                        "longer than the TTL) and %s holds the key now: the call may run twice",
                        key,
                        f"request {now.owner!r}" if now.running else "a recorded outcome",
                    )
                    return
            await asyncio.sleep(pause)

    def _keep(self, key: CallKey, token: str, status: int, body: bytes) -> None:
        """Record the outcome after the answer goes out (with the next claim, or within
        ``record.linger`` s); the call stays counted in flight, and its token this
        worker's, until it is written (tried again in the background while Redis refuses)."""
        self.inflight += 1
        self.record.record(key, status, body).add_done_callback(
            lambda done: self._recorded(key, token, status, body, done)
        )

    def _recorded(
        self, key: CallKey, token: str, status: int, body: bytes, done: asyncio.Future[None]
    ) -> None:
        exc = None if done.cancelled() else done.exception()
        if exc is None:
            self.inflight -= 1
            self._mine.discard(token)
            return
        why = exc.message if isinstance(exc, GlobalFuncError) else repr(exc)
        log.warning(
            "key %s: its outcome was not recorded (%s); trying again every %gs",
            key,
            why,
            _RECORD_EVERY,
        )
        # until it lands, the token stays this worker's: duplicates here and elsewhere
        # see it running on a live worker and wait for the outcome, none runs it again
        self._background(self._record_again(key, token, status, body))

    async def _record_again(self, key: CallKey, token: str, status: int, body: bytes) -> None:
        try:
            for _ in range(_RECORD_TRIES):
                await asyncio.sleep(_RECORD_EVERY)
                try:
                    await self.record.record(key, status, body)
                except GlobalFuncError:
                    continue
                log.info("key %s: its outcome is recorded", key)
                return
            log.error(
                "key %s: its outcome was not recorded after %gs; its claim stays until it "
                "expires, and a resend after this worker stops may run the call again",
                key,
                _RECORD_TRIES * _RECORD_EVERY,
            )
        finally:
            self.inflight -= 1
            self._mine.discard(token)

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _unclaim(self, key: CallKey, token: str) -> None:
        """Drop the claim a request that gave up on Redis may still have left (Redis took
        it late), once Redis answers again, so that other workers need not wait for it.
        Until then ``token`` counts as at work: this worker's twin requests wait."""
        try:
            for _ in range(_UNCLAIM_TRIES):
                await asyncio.sleep(_UNCLAIM_EVERY)
                try:
                    await self.record.release(key, token)
                    return
                except GlobalFuncError:
                    continue
            log.warning("key %s: a claim Redis may have taken late was not dropped", key)
        finally:
            self._mine.discard(token)

    async def _forget(self, key: CallKey, token: str) -> None:
        try:
            await self.record.release(key, token)
        except GlobalFuncError as exc:
            log.warning("key %s: its claim was not released: %s", key, exc.message)
        finally:
            self._mine.discard(token)


_GUARD: CallGuard | None = None


def install(guard: CallGuard | None) -> None:
    """Make ``guard`` the one every call of this process goes through (``None``: none)."""
    global _GUARD
    _GUARD = guard


def current() -> CallGuard | None:
    """The installed guard (``server.worker`` installs one; ``gf serve`` none)."""
    return _GUARD
