"""The supervised pool: a fixed number of child-process slots shared by calls, on one event loop.

Every isolated call in GlobalFunc goes through :meth:`SupervisedPool.submit`: the worker
pool of the HTTP server and of ``GFGo``/``gf call`` (frame slots,
:mod:`globalfunc.executor.handle`) and the AIGES process engine (plugin slots,
:mod:`server.aiges.process_engine`). The pool decides; a slot only talks to its child.

The pool's rules:

- **One thread owns the state.** Every decision (who gets a slot, what a death means,
  when to replace) runs on the pool's event loop, so there is no lock to hold while
  sending, spawning or calling back, and no callback can re-enter a held lock. A call is
  driven by callbacks, not a task of its own: the slot's answer completes the caller's
  future in the same loop turn that read it (a task per call cost twice the CPU). Other
  threads reach the pool through :func:`asyncio.run_coroutine_threadsafe`. Blocking work
  (starting a process, reaping one) runs in the loop's default thread pool.
- **Deadlines cover the whole call**: time spent queued counts. A call past its deadline
  while waiting fails with :class:`QueueTimeout`; one running fails with
  :class:`RunTimeout` and its child is killed and replaced (a stuck thread cannot be
  stopped any other way).
- **Fairness**: at most ``per_key_limit`` calls of one key (a function) run at once, so one
  hanging function cannot hold every slot; calls over it wait while others pass them. At
  most ``max_queue`` calls of one key wait; one more fails at once with :class:`PoolFull`
  (a bound per key, so one function's flood cannot refuse the others).
- **Deaths**: a child that dies while idle is replaced. One that dies during a call fails
  that call with :class:`ChildDied` if the call had reached it (``started``); a call the
  child never read is sent to another slot and not blamed (at most ``max_requeues`` times).

What it does not do: know any wire protocol (slots do), translate its exceptions into
user-facing errors (the executor does), or retry a call that may have run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic

from globalfunc.executor.call import PoolCall, as_is
from globalfunc.executor.slot import (
    ChildDied,
    LoopThread,
    PoolClosed,
    PoolFull,
    QueueTimeout,
    RunTimeout,
    S,
    Slot,
)

__all__ = [
    "ChildDied",
    "LoopThread",
    "PoolClosed",
    "PoolFull",
    "QueueTimeout",
    "RunTimeout",
    "Slot",
    "SupervisedPool",
]

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
SWEEP_EVERY = 5.0


class SupervisedPool(Generic[S]):
    """``size`` slots made by ``spawn``, shared by calls on ``loop``; see the module docstring."""

    def __init__(
        self,
        spawn: Callable[[], S],
        size: int,
        *,
        loop: asyncio.AbstractEventLoop,
        per_key_limit: int | None = None,
        max_queue: int = 256,
        max_requeues: int = 3,
        start_timeout: float = START_TIMEOUT,
        name: str = "pool",
        sweep: Callable[[set[int]], object] | None = None,
    ) -> None:
        self._spawn = spawn
        self.size = size
        self.loop = loop
        self.per_key_limit = per_key_limit or size
        self.max_queue = max_queue
        self.max_requeues = max_requeues
        self.start_timeout = start_timeout
        self.name = name
        self._idle: list[S] = []
        self._busy: dict[S, str] = {}
        self._starting = 0
        self._queue: deque[PoolCall[S]] = deque()
        self._running: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._starting_slots: set[S] = set()
        self._spawner = ThreadPoolExecutor(max(2, size), thread_name_prefix=f"{name}-spawn")
        self._tasks: set[asyncio.Future[Any]] = set()
        self._calls: set[PoolCall[S]] = set()  # running (sent to a slot)
        self._closed = False
        self._sweep = sweep
        self._sweeper: asyncio.TimerHandle | None = None
        self.replaced = 0

    # -- lifecycle (on the loop) --------------------------------------------------------
    async def start(self) -> None:
        """Start every slot and wait until each is ready; raise the first failure."""
        slots = await asyncio.gather(
            *(self._spawn_one() for _ in range(self.size)), return_exceptions=True
        )
        made = [s for s in slots if not isinstance(s, BaseException)]
        for slot in made:
            self._watch(slot)
        failures: list[BaseException] = [s for s in slots if isinstance(s, BaseException)]
        if not failures:
            results = await asyncio.gather(
                *(asyncio.wait_for(s.ready(), self.start_timeout) for s in made),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for slot in made:
                self._unwatch(slot)
                await self.loop.run_in_executor(None, slot.close)
            raise failures[0]
        self._idle.extend(made)
        self._dispatch()
        self._schedule_sweep(SWEEP_EVERY)

    def close(self, grace: float = 1.0) -> None:
        """(On the loop's thread.) Fail waiting calls, end running ones, stop every child:
        EOF first, ``grace`` seconds in all to leave, then SIGKILL."""
        if self._closed:
            return
        self._closed = True
        queued, self._queue = list(self._queue), deque()
        self._waiting.clear()
        for call in queued:
            call._end(None, PoolClosed())
        for task in list(self._tasks):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        slots = [*self._idle, *self._busy]
        self._idle.clear()
        for slot in slots:
            self._unwatch(slot)
        starting, self._starting_slots = list(self._starting_slots), set()
        for slot in starting:  # not ready yet (maybe stopped): no grace
            self._unwatch(slot)
            slot.child.kill()
        deadline = time.monotonic() + grace
        for slot in slots:
            slot.child.close(grace=max(0.0, deadline - time.monotonic()))
        for slot in [*slots, *starting]:
            slot.on_exit()  # fails the calls they held; their run() raises PoolClosed
            slot.close()
        self._spawner.shutdown(wait=False, cancel_futures=True)
        if self._sweep is not None:
            with contextlib.suppress(Exception):
                self._sweep(set())  # what the children left running goes with them

    def stats(self) -> dict[str, int]:
        ready = len(self._idle) + len(self._busy)
        return {
            "workers": ready + self._starting,  # replacements count: they are on their way
            "ready": ready,
            "busy": len(self._busy),
            "starting": self._starting,
            "queued": sum(self._waiting.values()),
            "replaced": self.replaced,
        }

    def pids(self) -> list[int]:
        return sorted(s.child.pid for s in [*self._idle, *self._busy])

    # -- calls (on the loop) -------------------------------------------------------------
    def submit(
        self,
        key: str,
        job_for: Callable[[S], Any],
        deadline: float,
        finish: Callable[[Any, BaseException | None], Any] = as_is,
    ) -> asyncio.Future[Any]:
        """Start one call of ``key`` before ``deadline`` (``loop.time()``), on the loop's
        thread; the future gets ``finish(answer, exc)``. See the module docstring."""
        call: PoolCall[S] = PoolCall(self, key, job_for, deadline, finish)
        if self._closed:
            call._end(None, PoolClosed())
        elif not self._queue and self._idle and self._running[key] < self.per_key_limit:
            call.run(self._take(key))
        elif self._waiting[key] >= self.max_queue:
            call._end(None, PoolFull())
        else:
            self._enqueue(call, front=False)
        return call.result

    async def run(self, key: str, job_for: Callable[[S], Any], deadline: float) -> Any:
        """:meth:`submit`, awaited."""
        return await self.submit(key, job_for, deadline)

    def _enqueue(self, call: PoolCall[S], *, front: bool) -> None:
        self._waiting[call.key] += 1
        if front:
            self._queue.appendleft(call)
        else:
            self._queue.append(call)
        self._dispatch()  # an idle slot may be free for this key while others wait at their limit

    def _dequeue(self, call: PoolCall[S]) -> None:
        try:
            self._queue.remove(call)
        except ValueError:
            return
        self._uncount(call.key)

    def _uncount(self, key: str) -> None:
        left = self._waiting[key] - 1
        if left > 0:
            self._waiting[key] = left
        else:
            del self._waiting[key]

    def _take(self, key: str) -> S:
        slot = self._idle.pop()
        self._running[key] += 1
        self._busy[slot] = key
        return slot

    def _release(self, slot: S) -> None:
        key = self._busy.pop(slot, None)
        if key is not None:
            self._running[key] -= 1
        if self._closed:
            return
        self._idle.append(slot)
        if self._queue:
            self._dispatch()

    def _dispatch(self) -> None:
        """Hand idle slots to the first waiting calls whose key is under its limit."""
        queue, limit, running = self._queue, self.per_key_limit, self._running
        while self._idle and queue:
            first = queue[0]
            if running[first.key] < limit:
                queue.popleft()
                pick = first
            else:
                found = [c for c in queue if running[c.key] < limit][:1]
                if not found:
                    return
                pick = found[0]
                queue.remove(pick)
            self._uncount(pick.key)
            if pick.result.cancelled():  # its caller stopped waiting: nothing to send
                pick.forget()
                continue
            pick.run(self._take(pick.key))

    # -- deaths and replacement -----------------------------------------------------------
    def _watch(self, slot: S) -> None:
        slot.attach(self.loop)
        self.loop.add_reader(slot.child.exit_fd, self._on_exit, slot)

    def _unwatch(self, slot: S) -> None:
        slot.detach()
        with contextlib.suppress(Exception):  # fd closed already, loop closing
            self.loop.remove_reader(slot.child.exit_fd)

    def _on_exit(self, slot: S) -> None:
        self._unwatch(slot)
        slot.on_exit()  # a busy slot's call now ends: its run() retires the slot
        if slot in self._idle:
            self._idle.remove(slot)
            self._retire(slot, f"it {slot.child.exit_description(0.5)} while idle")

    def _retire(self, slot: S, why: str) -> None:
        """Drop ``slot`` (its child is killed) and start a replacement."""
        key = self._busy.pop(slot, None)
        if key is not None:
            self._running[key] -= 1
        if slot in self._idle:
            self._idle.remove(slot)
        self._unwatch(slot)
        slot.child.kill()
        if self._closed:  # close() stops every child itself
            return
        self.loop.run_in_executor(None, slot.close)
        self._schedule_sweep(0.2)  # what the dead child left running
        self.replaced += 1
        log.warning("%s: replacing child %d (%s)", self.name, slot.child.pid, why)
        task = self.loop.create_task(self._replace())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._dispatch()  # a waiter held back by its key's limit may fit an idle slot now

    def _schedule_sweep(self, delay: float) -> None:
        if self._sweep is None or self._closed:
            return
        if self._sweeper is not None:
            if self._sweeper.when() <= self.loop.time() + delay:
                return
            self._sweeper.cancel()
        self._sweeper = self.loop.call_later(delay, self._run_sweep)

    def _run_sweep(self) -> None:
        self._sweeper = None
        if self._sweep is None or self._closed:
            return
        keep = {s.child.pid for s in [*self._idle, *self._busy, *self._starting_slots]}
        try:
            self._sweep(keep)
        except Exception:  # never let housekeeping stop the pool
            log.exception("%s: sweeping orphaned processes failed", self.name)
        self._schedule_sweep(SWEEP_EVERY)

    async def _spawn_one(self) -> S:
        """Start a child on the pool's own spawner thread. If we are cancelled while it
        starts (the pool is closing), the child is closed as soon as it exists."""
        started = self._spawner.submit(self._spawn)
        try:
            return await asyncio.wrap_future(started, loop=self.loop)
        except asyncio.CancelledError:
            started.add_done_callback(_close_result)
            raise

    async def _replace(self) -> None:
        self._starting += 1
        delay = 0.0
        try:
            while not self._closed:
                slot: S | None = None
                try:
                    slot = await self._spawn_one()
                    self._starting_slots.add(slot)
                    self._watch(slot)
                    await asyncio.wait_for(slot.ready(), self.start_timeout)
                except asyncio.CancelledError:
                    if slot is not None and slot in self._starting_slots:  # close() missed it
                        self._starting_slots.discard(slot)
                        self._unwatch(slot)
                        slot.child.kill()
                        self._spawner.submit(slot.close)
                    raise
                except Exception as exc:
                    if slot is not None:
                        self._starting_slots.discard(slot)
                        self._unwatch(slot)
                        self.loop.run_in_executor(None, slot.close)
                    delay = min(10.0, max(0.25, delay * 2))
                    log.error(
                        "%s: a new child failed to start (%s); retrying in %.2gs",
                        self.name,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                self._starting_slots.discard(slot)
                if self._closed:
                    self._unwatch(slot)
                    self.loop.run_in_executor(None, slot.close)
                    return
                self._idle.append(slot)
                self._dispatch()
                return
        finally:
            self._starting -= 1


def _close_result(started: Future[Any]) -> None:
    if not started.cancelled() and started.exception() is None:
        started.result().close()
