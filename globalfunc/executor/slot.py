"""What a pool slot is, and what the pool tells its callers: the contract between
:mod:`globalfunc.executor.pool` and the slots it supervises.

A :class:`Slot` is one child process and the parent's end of its protocol (frames over
pipes for the isolated executor, gRPC for the AIGES process engine). The pool's own
outcomes are :class:`PoolSignal` subclasses, which an executor turns into the errors a
user sees. :class:`LoopThread` gives a pool an event loop when its users are synchronous.

What it does not do: decide anything (the pool does) or speak any protocol (slots do).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from globalfunc.executor.child import Child

__all__ = [
    "ChildDied",
    "LoopThread",
    "PoolClosed",
    "PoolFull",
    "PoolSignal",
    "QueueTimeout",
    "RunTimeout",
    "Slot",
]


class PoolSignal(Exception):
    """Base of the pool's own outcomes; the executor turns them into user-facing errors."""


class ChildDied(PoolSignal):
    """The child ended during the call; ``started`` says whether it had read the call."""

    def __init__(self, started: bool, how: str) -> None:
        super().__init__(how)
        self.started = started
        self.how = how


class RunTimeout(PoolSignal):
    """The call ran past its deadline; its child was killed."""


class QueueTimeout(PoolSignal):
    """The deadline passed while the call waited for a slot."""


class PoolFull(PoolSignal):
    """Too many calls are waiting already."""


class PoolClosed(PoolSignal):
    """The pool is closed (or closed while the call was in it). ``started``: the call had
    been handed to a child (it may have run in part); else it never left the queue."""

    def __init__(self, started: bool = False) -> None:
        super().__init__("the pool closed while the call ran" if started else "the pool is closed")
        self.started = started


class Slot(Protocol):
    """One child process and the parent's end of its protocol."""

    child: Child

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching the child's output on ``loop`` (called on the loop's thread)."""

    def detach(self) -> None:
        """Stop watching the child's output (on the loop's thread, before :meth:`close`)."""

    async def ready(self) -> None:
        """Return once the child can take calls; raise if it failed to start."""

    def start_call(self, job: Any, done: Callable[[Any, BaseException | None], None]) -> None:
        """Send ``job``; call ``done(answer, None)`` or ``done(None, ChildDied(...))`` once,
        on the loop (possibly before returning, if the child is already gone)."""

    def on_exit(self) -> None:
        """The process has ended: take any complete answer, then fail what is left."""

    @property
    def reusable(self) -> bool:
        """False once the child is dead or said it will exit."""

    def close(self) -> None:
        """Release the child for good (blocking: kill and reap). Runs off the loop."""


S = TypeVar("S", bound=Slot)


class LoopThread:
    """A private event loop on a daemon thread, for pools used from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="gf-pool", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()
