"""Session bookkeeping stays bounded and session handles are contiguous and never reused
while live (``WrapperEngine`` over the streaming test wrapper, and ``SessionManager``)."""

from __future__ import annotations

import queue
from pathlib import Path

from server.aiges.compat import dto
from server.aiges.compat.stream import SessionManager, StreamHandleThread
from server.aiges.engine import Frame, Outcome
from server.aiges.wrapper_host import RECENT_SESSIONS, WrapperEngine

STREAM = Path(__file__).resolve().parents[1] / "data" / "aiges" / "stream"


def test_a_thousand_sessions_leave_bounded_bookkeeping() -> None:
    engine = WrapperEngine(STREAM)
    results: queue.Queue[tuple[str, Outcome]] = queue.Queue()
    engine.bind(lambda tag, outcome: results.put((tag, outcome)))
    assert engine.init({"pool": "2"}) == 0
    handles: set[str] = set()
    sizes: list[dict[str, int]] = []
    try:
        for i in range(1000):
            tag, sid = f"tag-{i}", f"sid-{i}"
            handle, code = engine.create({"lang": "en"}, sid, tag)
            assert code == 0
            handles.add(handle)
            assert engine.write(handle, [Frame("text", f"w{i}".encode(), 0, 2)], "") == 0
            got_tag, outcome = results.get(timeout=10)
            assert (got_tag, outcome.frames[0].data) == (tag, f"en:W{i}".encode())
            assert engine.destroy(handle) == 0
            if i in (499, 999):
                sizes.append(engine.session_counts())
    finally:
        engine.fini()
    assert handles == {"session-0"}  # one session at a time: the first slot, reused
    live = {"tags": 0, "by_handle": 0, "by_sid": 0, "sid_by_tag": 0}
    for size in sizes:
        assert {k: size[k] for k in live} == live
        assert size["recent"] <= RECENT_SESSIONS
    assert sizes[0] == sizes[1]  # no growth between 500 and 1,000 sessions


def test_a_frame_pushed_after_destroy_still_reaches_its_tag() -> None:
    engine = WrapperEngine(STREAM)
    results: queue.Queue[tuple[str, Outcome]] = queue.Queue()
    engine.bind(lambda tag, outcome: results.put((tag, outcome)))
    assert engine.init({"pool": "1"}) == 0
    try:
        handle, _ = engine.create({}, "sid-late", "tag-late")
        assert engine.destroy(handle) == 0
        late = dto.Response(list=[dto.ResponseData("result", b"late", 4, 0, 2)])
        dto.callback(late, handle, "sid-late")
        assert results.get(timeout=5)[0] == "tag-late"
    finally:
        engine.fini()


class _Idle(StreamHandleThread):
    def run(self) -> None:
        while not self.is_stopping:
            try:
                self.in_q.get(timeout=0.1)
            except queue.Empty:
                continue


def test_handles_are_contiguous_and_a_second_pool_init_keeps_live_slots() -> None:
    manager = SessionManager()
    manager.init_handle_pool("thread", 3, _Idle)
    assert manager.handles == ["session-0", "session-1", "session-2"]
    live = manager.get_idle_handle()
    assert live == "session-0"
    slot = manager.get_session(live)
    assert slot is not None
    slot.setup_sid("sid-live")
    slot.setup_params({"k": "v"})

    manager.init_handle_pool("thread", 2, _Idle)
    assert manager.handles == [f"session-{i}" for i in range(5)]
    assert manager.get_session(live) is slot  # not replaced
    assert (slot.sid, slot.params, slot.is_idle) == ("sid-live", {"k": "v"}, False)
    assert [manager.get_idle_handle() for _ in range(5)] == [
        "session-1",
        "session-2",
        "session-3",
        "session-4",
        None,
    ]
    for handle in manager.handles:
        found = manager.get_session(handle)
        assert found is not None and found.worker is not None and found.worker.is_alive()
        found.worker.stop()  # type: ignore[attr-defined]
