"""The Python half of the native AIGES server: :class:`Bridge` and the not-built message.

The C++ server itself is exercised end to end in tests/integration/test_aiges_plugin.py;
here the bridge's plain-value contract is checked without it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from server.aiges.engine import EXEC_FAILED, INIT_FAILED, Emit, Frame, Outcome
from server.aiges.launch import PluginError
from server.aiges.native import Bridge, load_native


class FakeEngine:
    """An engine recording what it receives; ``fail`` names the methods that raise."""

    def __init__(self, *fail: str) -> None:
        self.fail = set(fail)
        self.emit: Emit | None = None
        self.seen: list[Any] = []

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise RuntimeError(f"{name} broke")

    def bind(self, emit: Emit) -> None:
        self.emit = emit

    def init(self, config: dict[str, str]) -> int:
        self._maybe_fail("init")
        self.seen.append(config)
        return 0

    def schema(self, service_id: str) -> dict[str, Any]:
        self._maybe_fail("schema")
        return {"meta": {"serviceId": service_id, "名": "✓"}}

    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        self._maybe_fail("once")
        self.seen.append((params, frames, tag))
        return Outcome(frames=[Frame("out", frames[0].data.upper(), 0, 3, {"k": "v"})])

    def create(self, params: dict[str, str], sid: str, tag: str) -> tuple[str, int]:
        self._maybe_fail("create")
        return tag, 0

    def write(self, handle: str, frames: list[Frame], sid: str) -> int:
        self._maybe_fail("write")
        return 0

    def destroy(self, handle: str) -> int:
        self._maybe_fail("destroy")
        return 0

    def fini(self) -> int:
        return 0


def test_once_turns_plain_items_into_frames_and_back() -> None:
    engine = FakeEngine()
    ret, items = Bridge(engine).once({"a": "1"}, [("text", b"hi", 0, 3, {"d": "x"})], "t1")
    assert (ret, items) == (0, [("out", b"HI", 0, 3, {"k": "v"})])
    params, frames, tag = engine.seen[0]
    assert params == {"a": "1"} and tag == "t1"
    assert frames == [Frame("text", b"hi", 0, 3, {"d": "x"})]


@pytest.mark.parametrize("method", ["once", "create", "write", "destroy"])
def test_a_raising_engine_becomes_exec_failed(method: str) -> None:
    bridge = Bridge(FakeEngine(method))
    calls = {
        "once": lambda: bridge.once({}, [("text", b"x", 0, 3, {})], "t")[0],
        "create": lambda: bridge.create({}, "sid", "t")[1],
        "write": lambda: bridge.write("h", [], "sid"),
        "destroy": lambda: bridge.destroy("h"),
    }
    assert calls[method]() == EXEC_FAILED


def test_init_failure_is_init_failed_and_success_passes_config() -> None:
    assert Bridge(FakeEngine("init")).init({}) == INIT_FAILED
    engine = FakeEngine()
    assert Bridge(engine).init({"k": "v"}) == 0
    assert engine.seen == [{"k": "v"}]


def test_schema_is_json_text_and_errors_propagate() -> None:
    text = Bridge(FakeEngine()).schema("svc")
    assert json.loads(text) == {"meta": {"serviceId": "svc", "名": "✓"}}
    with pytest.raises(RuntimeError, match="schema broke"):
        Bridge(FakeEngine("schema")).schema("svc")


def test_session_results_reach_the_native_emit_as_plain_values() -> None:
    engine = FakeEngine()
    pushed: list[Any] = []
    Bridge(engine).bind(lambda tag, ret, items: pushed.append((tag, ret, items)))
    assert engine.emit is not None
    engine.emit("tag-1", Outcome(frames=[Frame("r", b"1", 0, 1, {1: 2})]))  # type: ignore[dict-item]
    engine.emit("tag-1", Outcome.failure(0, "boom"))
    assert pushed == [("tag-1", 0, [("r", b"1", 0, 1, {"1": "2"})]), ("tag-1", EXEC_FAILED, [])]


def test_a_missing_native_module_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "server.aiges._native", None)  # makes the import fail
    with pytest.raises(PluginError, match=r"system-deps\.sh and reinstall"):
        load_native()


def test_out_of_range_results_are_normalised_to_exec_failed_before_the_cpp_side() -> None:
    engine = FakeEngine()
    bridge = Bridge(engine)
    engine.once = lambda params, frames, tag: Outcome(frames=[Frame("r", b"x", 9, 3)])  # type: ignore[method-assign]
    assert bridge.once({}, [], "t") == (EXEC_FAILED, [])
    engine.once = lambda params, frames, tag: Outcome(ret=2**40)  # type: ignore[method-assign]
    assert bridge.once({}, [], "t") == (EXEC_FAILED, [])
    pushed: list[Any] = []
    bridge.bind(lambda tag, ret, items: pushed.append((tag, ret, items)))
    assert engine.emit is not None
    engine.emit("s", Outcome(frames=[Frame("r", b"x", 0, -1)]))
    assert pushed == [("s", EXEC_FAILED, [])]
