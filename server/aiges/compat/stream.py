"""The session pool streaming wrappers use: ``self.session`` and ``StreamHandleThread``.

A wrapper calls ``self.session.init_handle_pool("thread", n, ThreadClass)`` during init;
that creates ``n`` :class:`SessionSlot` objects, each with a handle, an input queue and a
running ``ThreadClass(slot, in_q, out_q)``. ``wrapperCreate`` takes a free handle with
``get_idle_handle()``, configures the slot (``setup_sid``, ``setup_params``,
``setup_callback_fn``) and returns the handle; requests go on ``slot.in_q``; the thread
pushes result frames with ``slot.callback_fn(response, sid)``; ``reset()`` frees the slot.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from server.aiges.compat import dto

__all__ = ["SessionManager", "SessionSlot", "StreamHandleThread"]

log = logging.getLogger(__name__)


class StreamHandleThread(threading.Thread):
    """Base class of a session's worker thread; subclasses override ``init_model`` and ``run``."""

    def __init__(
        self, session_thread: Any, in_q: queue.Queue[Any], out_q: queue.Queue[Any]
    ) -> None:
        super().__init__(daemon=True, name=f"aiges-session-{getattr(session_thread, 'handle', '')}")
        self.is_stopping = False
        self.session_thread = session_thread
        self.in_q = in_q
        self.out_q = out_q

    def init_model(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def stop(self) -> None:
        self.is_stopping = True

    def run(self) -> None:
        self.init_model(self.session_thread.handle)
        while not self.is_stopping:
            try:
                self.in_q.get(timeout=0.5)
            except queue.Empty:
                continue


class SessionSlot:
    """One pooled session: its handle, queues, per-session state and callback."""

    def __init__(self, handle: str) -> None:
        self.handle = handle
        self.sid = ""
        self.params: dict[str, Any] = {}
        self.in_q: queue.Queue[Any] = queue.Queue()
        self.out_q: queue.Queue[Any] = queue.Queue()
        self.is_idle = True
        self.worker: threading.Thread | None = None
        self._callback: Callable[..., Any] | None = None

    @property
    def idle(self) -> bool:
        return self.is_idle

    def setup_sid(self, sid: str) -> None:
        self.sid = sid

    def setup_params(self, params: dict[str, Any]) -> None:
        self.params = params
        self.is_idle = False

    def setup_callback_fn(self, fn: Callable[..., Any]) -> None:
        self._callback = fn

    def callback_fn(self, response: Any, sid: Any = None, *rest: Any) -> Any:
        """Push ``response`` for this session; routed by handle so it reaches the right tag."""
        fn = self._callback or dto.callback
        sid = self.sid if sid is None else sid
        if fn is dto.callback:
            return dto.callback(response, self.handle, sid)
        # A user-supplied function: call it the way its signature allows.
        try:
            params = inspect.signature(fn).parameters.values()
            positional = [
                p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            star = any(p.kind is p.VAR_POSITIONAL for p in params)
        except (TypeError, ValueError):
            positional, star = [], True
        if star or len(positional) >= 3:
            return fn(response, self.handle, sid)
        return fn(response, sid)

    def reset(self) -> None:
        """Free the slot: forget sid and params, drop queued items, mark idle."""
        self.sid = ""
        self.params = {}
        for q in (self.in_q, self.out_q):
            with q.mutex:
                q.queue.clear()
        self.is_idle = True


class SessionManager:
    """The ``self.session`` helper: a fixed pool of :class:`SessionSlot`, handed out by handle."""

    def __init__(self) -> None:
        self.initialized = False
        self.wrapperConfig: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._slots: dict[str, SessionSlot] = {}

    def init_wrapper_config(self, config: dict[str, Any] | None = None) -> None:
        self.wrapperConfig = dict(config or {})

    def init_handle_pool(self, mode: str, nums: int, thread_cls: type[Any] | None = None) -> None:
        """Create ``nums`` slots (``mode`` "thread"; "process" is served by threads too).

        Handles are contiguous (``session-0``, ``session-1``, ...). A second call adds
        ``nums`` more slots after the existing ones; it never replaces a slot, so live
        sessions keep theirs.
        """
        if mode not in ("thread", "process"):
            log.warning("unknown session pool mode %r; using threads", mode)
        cls = thread_cls or StreamHandleThread
        added: list[SessionSlot] = []
        with self._lock:
            if self._slots:
                log.info(
                    "init_handle_pool called again: adding %d slots to the %d there are",
                    int(nums),
                    len(self._slots),
                )
            number = len(self._slots)
            for _ in range(int(nums)):
                while f"session-{number}" in self._slots:
                    number += 1
                slot = SessionSlot(f"session-{number}")
                slot.is_idle = False  # not handed out before its worker runs
                self._slots[slot.handle] = slot
                added.append(slot)
                number += 1
        for slot in added:  # start the workers after releasing the lock
            worker = cls(slot, slot.in_q, slot.out_q)
            worker.daemon = True
            slot.worker = worker
            worker.start()
            slot.is_idle = True
        self.initialized = True

    @property
    def handles(self) -> list[str]:
        return list(self._slots)

    def get_session(self, handle: str) -> SessionSlot | None:
        return self._slots.get(handle)

    def get_idle_handle(self) -> str | None:
        """Take a free slot and return its handle; ``None`` when every slot is busy."""
        with self._lock:
            for handle, slot in self._slots.items():
                if slot.is_idle:
                    slot.is_idle = False
                    return handle
        return None

    def set_idle_session(self, handle: str) -> None:
        slot = self._slots.get(handle)
        if slot is not None:
            slot.is_idle = True

    def reset_session(self, handle: str) -> None:
        slot = self._slots.get(handle)
        if slot is not None:
            slot.reset()

    def push_back(self, handle: str) -> None:
        self.reset_session(handle)
