"""One call through a :class:`~globalfunc.executor.pool.SupervisedPool`, driven by callbacks.

A :class:`PoolCall` waits for a slot, sends its job, takes the answer from the slot's
callback, or gives up at its deadline; its outcome completes one future, in the loop turn
that produced it (no task per call: that cost twice the CPU). Everything here runs on the
pool's loop; the pool decides who gets which slot, the call only reports what happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic

from globalfunc.executor.slot import ChildDied, PoolClosed, QueueTimeout, RunTimeout, S

if TYPE_CHECKING:
    from globalfunc.executor.pool import SupervisedPool

__all__ = ["PoolCall", "as_is"]

log = logging.getLogger("globalfunc.executor.pool")


class PoolCall(Generic[S]):
    """One call through the pool, driven by callbacks (no task of its own): wait for a
    slot, send, take the answer from the slot's callback, or give up at the deadline.
    ``finish(answer, exc)`` turns the outcome into the caller's result."""

    __slots__ = ("done", "finish", "job_for", "key", "pool", "requeues", "result", "slot", "timer")

    def __init__(
        self,
        pool: SupervisedPool[S],
        key: str,
        job_for: Callable[[S], Any],
        deadline: float,
        finish: Callable[[Any, BaseException | None], Any],
    ) -> None:
        self.pool = pool
        self.key = key
        self.job_for = job_for
        self.finish = finish
        self.result: asyncio.Future[Any] = pool.loop.create_future()
        self.slot: S | None = None
        self.requeues = 0
        self.done = False
        self.timer = pool.loop.call_at(deadline, self._expired)

    def run(self, slot: S) -> None:
        """Send the call to ``slot`` (taken for it under its key)."""
        self.slot = slot
        try:
            job = self.job_for(slot)
        except BaseException as exc:
            self.slot = None
            self.pool._release(slot)
            self._end(None, exc)
            return
        slot.start_call(job, self._answered)

    def _answered(self, answer: Any, exc: BaseException | None) -> None:
        slot, self.slot = self.slot, None
        if self.done or slot is None:  # timed out (its slot was retired then) or closed
            return
        pool = self.pool
        if exc is None:
            if slot.reusable:
                pool._release(slot)
            else:
                pool._retire(slot, "it said it would exit")
            self._end(answer, None)
            return
        how = getattr(exc, "how", str(exc))
        pool._retire(slot, f"it {how}")
        if pool._closed:  # its child was running it: it may have run in part
            self._end(None, PoolClosed(started=True))
        elif isinstance(exc, ChildDied) and not exc.started and self.requeues < pool.max_requeues:
            self.requeues += 1
            log.info(
                "%s: %s had not started on child %d; sent again",
                pool.name,
                self.key,
                slot.child.pid,
            )
            pool._enqueue(self, front=True)
        else:
            self._end(None, exc)

    def _expired(self) -> None:
        if self.done:
            return
        slot, self.slot = self.slot, None
        if slot is None:
            self.pool._dequeue(self)
            self._end(None, QueueTimeout())
            return
        slot.child.kill()  # a stuck call cannot be stopped any other way
        self.pool._retire(slot, "a call ran past its deadline")
        self._end(None, RunTimeout())

    def forget(self) -> None:
        """Its caller stopped waiting before it was sent (the pool skips it). A call whose
        caller gives up while it runs finishes in its worker; the answer is dropped."""
        self.done = True
        self.timer.cancel()

    def _end(self, answer: Any, exc: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        self.timer.cancel()
        result = self.result
        if result.done():
            return
        try:
            out = self.finish(answer, exc)
        except BaseException as err:
            result.set_exception(err)
        else:
            result.set_result(out)


def as_is(answer: Any, exc: BaseException | None) -> Any:
    if exc is not None:
        raise exc
    return answer
