"""``aiges_embed`` in C++ (``server.aiges._embed``) and its fallback ``compat.dto``: the same
tests on both, and the zero-copy ``Buffer`` request data reaches Python through."""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np
import pytest

from server.aiges.compat import dto, embed_module
from server.aiges.native import native_required, why_missing

try:
    from server.aiges import _embed as native_embed
except ImportError:  # not built: the native cases fail under GF_REQUIRE_NATIVE, else skip
    native_embed = None


def _native() -> ModuleType:
    if native_embed is None:
        if native_required():
            pytest.fail(why_missing("server.aiges._embed"))
        pytest.skip(why_missing("server.aiges._embed"))
    return native_embed


@pytest.fixture(params=["dto", "native"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return dto if request.param == "dto" else _native()


def test_data_list_node(mod: ModuleType) -> None:
    node = mod.DataListNode(key="text", data=b"abc", type=1, status=2, desc={"a": "b"})
    assert (node.key, node.data, node.len, node.type, node.status) == ("text", b"abc", 3, 1, 2)
    assert node.desc == {"a": "b"} and node.get_data() == b"abc"
    assert repr(node) == "DataListNode(key='text', len=3, type=1, status=2)"
    default = mod.DataListNode()
    assert (default.key, default.data, default.len, default.status, default.desc) == (
        "",
        b"",
        0,
        0,
        {},
    )
    default.extra = 5  # wrapper code sets attributes of its own
    assert default.extra == 5


def test_data_list_get(mod: ModuleType) -> None:
    a, b = mod.DataListNode(key="a"), mod.DataListNode(key="b")
    data = mod.DataListCls([a, b])
    assert data.get("b") is b and data.get("c") is None
    data.list.append(mod.DataListNode(key="c"))
    assert data.get("c").key == "c"
    assert mod.DataListCls().list == []


def test_response_data_and_response(mod: ModuleType) -> None:
    item = mod.ResponseData()
    assert (item.key, item.data, item.len, item.type, item.status) == ("", b"", 0, 0, 3)
    item.setData("héllo")
    assert item.len == 6 and item.data == "héllo"
    item.setDataType(2)
    assert item.type == 2
    assert repr(item) == "ResponseData(key='', len=6, type=2, status=3)"
    resp = mod.Response([item])
    assert resp.list[0] is item and resp.error_code == 0
    assert resp.response_err(10101) is resp and resp.error_code == 10101
    assert repr(mod.Response()) == "Response(error_code=0, list=[])"
    created = mod.SessionCreateResponse(handle="h1")
    assert (created.handle, created.error_code) == ("h1", 0)
    assert repr(created) == "SessionCreateResponse(handle='h1', error_code=0)"


def test_callback_reaches_the_hosts_sink(mod: ModuleType) -> None:
    got: list[tuple[object, str, str]] = []
    previous = dto.set_callback_sink(lambda r, k, s: got.append((r, k, s)))
    try:
        resp = mod.Response()
        assert mod.callback(resp, "tag", "sid") == 0
    finally:
        dto.set_callback_sink(previous)
    assert got == [(resp, "tag", "sid")]


def test_aiges_embed_is_the_cpp_module_when_built() -> None:
    module = embed_module()
    if native_embed is None and not native_required():
        assert module is dto
    else:
        assert module is _native()


def test_buffer_reads_in_place_without_copying() -> None:
    embed = _native()
    source = bytearray(b"hello world")
    buf = embed.Buffer(memoryview(source))
    assert len(buf) == 11 and buf[0] == ord("h") and buf[-1] == ord("d")
    assert buf[0:5] == b"hello" and buf[::2] == b"hlowrd"
    assert buf.decode() == "hello world" and buf == b"hello world" and bytes(buf) == source
    assert buf.upper() == b"HELLO WORLD"  # bytes methods it lacks run on a copy
    array = np.frombuffer(buf, dtype=np.uint8)
    assert np.shares_memory(array, np.frombuffer(source, dtype=np.uint8))
    source[0] = ord("J")  # the same memory, seen through the view
    assert buf.decode() == "Jello world" and array[0] == ord("J")
    del array
    view = memoryview(buf)
    assert buf.exports == 1 and view.readonly
    view.release()
    assert buf.release() == 0 and buf.released
    with pytest.raises(ValueError, match="released when its call ended"):
        len(buf)
    with pytest.raises(ValueError):
        memoryview(buf)


def test_buffer_release_reports_views_kept_past_the_call() -> None:
    buf = _native().Buffer(b"abc")
    kept = memoryview(buf)
    assert buf.release() == 1
    kept.release()


def test_a_64_mib_payload_is_read_without_a_copy() -> None:
    embed = _native()
    payload = bytearray(64 << 20)
    payload[0], payload[-1] = 1, 2
    start = time.perf_counter()
    for _ in range(100):
        buf = embed.Buffer(memoryview(payload))
        first, last = memoryview(buf)[0], buf[-1]
        buf.release()
    per_call = (time.perf_counter() - start) / 100
    assert (first, last) == (1, 2)
    # A copy of 64 MiB takes milliseconds; a view is microseconds.
    assert per_call < 0.001, f"{per_call * 1e3:.3f} ms per 64 MiB view"
