"""The SDK stand-ins, the wrapper host's calling conventions and result conversion (no gRPC)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from server.aiges import compat
from server.aiges.compat import dto, stream
from server.aiges.engine import EXEC_FAILED, Frame, Outcome
from server.aiges.wrapper_host import (
    WrapperEngine,
    call_flexibly,
    data_list,
    outcome_from_response,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "aiges"


def test_install_provides_every_module_wrapper_files_import() -> None:
    compat.install()
    import aiges.core.types as core_types
    import aiges.types as old_types
    from aiges.callback import callback
    from aiges.dto import DataListCls, Response, SessionCreateResponse
    from aiges.sdk import IntegerParamField, JsonBodyField, WrapperBase
    from aiges.stream import StreamHandleThread
    from aiges.utils.log import getFileLogger, log
    from aiges_embed import ResponseData

    assert core_types.DataImage == old_types.DataImage == 2
    assert core_types.DataEnd == 2 and core_types.Once == 3
    assert callback is dto.callback
    assert issubclass(StreamHandleThread, threading.Thread)
    assert getFileLogger().name == "wrapper" and log.name == "wrapper"
    assert IntegerParamField("n", minimum=1, maximum=9).data_type == "integer"
    assert JsonBodyField("j").format == "json"
    assert SessionCreateResponse("h", 0).handle == "h"
    assert isinstance(WrapperBase().session, stream.SessionManager)
    assert DataListCls().get("x") is None
    assert Response is dto.Response
    # aiges_embed is the C++ module when it is built, else dto (tests/unit/test_aiges_embed.py)
    assert ResponseData is compat.embed_module().ResponseData
    assert "aiges_embed" in compat.installed_names()


def test_install_never_shadows_a_real_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = type(sys)("aiges")
    real.__doc__ = "the real SDK"
    for name in [n for n in sys.modules if n == "aiges" or n.startswith("aiges.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aiges", real)
    added = compat.install()
    assert not any(name.startswith("aiges.") or name == "aiges" for name in added)
    assert sys.modules["aiges"] is real
    assert "aiges.sdk" not in sys.modules


def test_response_data_setters_and_response_err() -> None:
    item = dto.ResponseData()
    item.setData("héllo")
    item.setDataType(1)
    assert (item.len, item.type) == (6, 1)
    res = dto.Response(list=[item])
    assert res.response_err(42) is res and res.error_code == 42
    nodes = dto.DataListCls([dto.DataListNode("a", b"1"), dto.DataListNode("a", b"2")])
    node = nodes.get("a")
    assert node is not None and node.data == b"1" and node.get_data() == b"1"


def test_callback_goes_to_the_installed_sink() -> None:
    got: list[tuple[Any, str, str]] = []
    previous = dto.set_callback_sink(lambda r, h, s: got.append((r, h, s)))
    try:
        res = dto.Response()
        assert dto.callback(res, "handle-1", "sid-1") == 0
        assert dto.callback(res, "sid-only") == 0  # the SDK's two-argument form
    finally:
        dto.set_callback_sink(previous)
    assert got == [(res, "handle-1", "sid-1"), (res, "sid-only", "")]
    dto.set_callback_sink(None)
    assert dto.callback(dto.Response(), "h") == -1


def test_call_flexibly_passes_only_what_the_signature_accepts() -> None:
    calls: list[tuple[Any, ...]] = []

    class W:
        def old_once(self, params: Any, req: Any, persId: int = 0) -> None:
            calls.append(("old", params, req, persId))

        def new_once(self, params: Any, req: Any, usrTag: str = "", persId: int = 0) -> None:
            calls.append(("new", usrTag))

        def write2(self, handle: Any, datas: Any) -> None:
            calls.append(("write2", handle, datas))

        def create(cls, params: Any, sid: Any, persId: int = 0) -> None:
            calls.append(("create", sid))

        def anything(self, *args: Any, **kwargs: Any) -> None:
            calls.append(("any", args, tuple(sorted(kwargs))))

    w = W()
    call_flexibly(w.old_once, [{}, "R"], {"usrTag": "T"})
    call_flexibly(w.new_once, [{}, "R"], {"usrTag": "T"})
    call_flexibly(w.write2, ["h", "d", "sid"], {})
    call_flexibly(w.create, [{}], {"sid": "S", "userTag": "T"})
    call_flexibly(w.anything, [1, 2], {"sid": "S"})
    assert calls == [
        ("old", {}, "R", 0),
        ("new", "T"),
        ("write2", "h", "d"),
        ("create", "S"),
        ("any", (1, 2), ("sid",)),
    ]


@pytest.mark.parametrize(
    ("resp", "ret", "keys"),
    [
        (None, EXEC_FAILED, []),
        (dto.Response(), EXEC_FAILED, []),
        (dto.Response(list=[dto.ResponseData("k", b"v")], error_code=9), 9, ["k"]),
        (dto.Response(list=[dto.ResponseData("k", "text")]), 0, ["k"]),
        (4408, 4408, []),
        ([{"key": "d", "data": "x", "type": 0, "status": 3, "len": 1}], 0, ["d"]),
    ],
)
def test_outcome_from_response(resp: Any, ret: int, keys: list[str]) -> None:
    out = outcome_from_response(resp)
    assert out.ret == ret
    assert [f.key for f in out.frames] == keys
    assert all(isinstance(f.data, bytes) for f in out.frames)


def test_data_list_builds_sdk_nodes() -> None:
    nodes = data_list([Frame("a", b"xy", 2, 1, {"encoding": "png"})])
    node = nodes.get("a")
    assert (node.data, node.len, node.type, node.status, node.desc) == (
        b"xy",
        2,
        2,
        1,
        {"encoding": "png"},
    )


def test_session_pool_hands_out_handles_and_routes_callbacks() -> None:
    seen: list[Any] = []

    class Worker(stream.StreamHandleThread):
        def run(self) -> None:
            while not self.is_stopping:
                req = self.in_q.get()
                self.session_thread.callback_fn(req, self.session_thread.sid)

    manager = stream.SessionManager()
    manager.init_handle_pool("thread", 2, Worker)
    a, b = manager.get_idle_handle(), manager.get_idle_handle()
    assert a and b and a != b
    assert manager.get_idle_handle() is None
    slot = manager.get_session(a)
    assert slot is not None
    slot.setup_sid("sid-a")
    slot.setup_params({"x": "1"})
    slot.setup_callback_fn(lambda resp, sid: seen.append((resp, sid)))
    slot.in_q.put("frame")
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [("frame", "sid-a")]
    slot.reset()
    assert (slot.sid, slot.params, slot.idle) == ("", {}, True)
    assert manager.get_idle_handle() == a


def test_wrapper_engine_routes_pool_handles_back_to_the_create_tag() -> None:
    engine = WrapperEngine(DATA / "stream")
    emitted: list[tuple[str, Outcome]] = []
    engine.bind(lambda tag, outcome: emitted.append((tag, outcome)))
    assert engine.init({"pool": "1"}) == 0
    handle, code = engine.create({"lang": "xx"}, "sid-1", "TAG-1")
    assert code == 0 and handle != "TAG-1"
    assert engine.write(handle, [Frame("text", b"hi", 0, 2)], "") == 0
    deadline = time.monotonic() + 5
    while not emitted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(t, o.ret, [f.data for f in o.frames]) for t, o in emitted] == [
        ("TAG-1", 0, [b"xx:HI"])
    ]
    assert engine.create({}, "sid-2", "TAG-2") == ("", 10012)  # pool of one is busy
    assert engine.destroy(handle) == 0
    engine.fini()
