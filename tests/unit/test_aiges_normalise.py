"""``server.aiges.engine.normalise``: the one result rule both plugin servers apply."""

from __future__ import annotations

import pytest

from server.aiges.engine import EXEC_FAILED, Frame, Outcome, normalise


def test_a_valid_result_passes_unchanged_and_is_not_copied() -> None:
    outcome = Outcome(frames=[Frame("result", b"x", 2, 0, {"k": "v"})])
    assert normalise(outcome) is outcome


@pytest.mark.parametrize("ret", [2**31, -(2**31) - 1, "7", 1.0, None])
def test_a_ret_outside_int32_or_not_an_integer_is_exec_failed(ret: object) -> None:
    result = normalise(Outcome(ret=ret, frames=[Frame("r", b"x")]))  # type: ignore[arg-type]
    assert (result.ret, result.frames) == (EXEC_FAILED, [])
    assert repr(ret) in result.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("type", 5), ("type", -1), ("type", 2**33), ("type", 1.0), ("status", 4), ("status", -1)],
)
def test_type_and_status_outside_their_ranges_are_exec_failed(field: str, value: object) -> None:
    frame = Frame("result", b"x")
    setattr(frame, field, value)
    result = normalise(Outcome(frames=[Frame("first", b""), frame]))
    assert (result.ret, result.frames) == (EXEC_FAILED, [])
    assert f"item 1 ('result') has {field} {value!r}" in result.message


def test_edge_values_are_accepted() -> None:
    frames = [Frame("a", b"", 0, 0), Frame("b", b"", 4, 3)]
    assert normalise(Outcome(ret=-(2**31), frames=frames)).ret == -(2**31)
    assert normalise(Outcome(ret=2**31 - 1, frames=frames)).ret == 2**31 - 1


def test_plain_values_are_made_from_near_misses() -> None:
    frame = Frame("r", "text é", True, 3, {"raw": b"\xff", 1: 2, "s": "\ud800"})  # type: ignore[arg-type]
    result = normalise(Outcome(ret=False, frames=[frame]))  # type: ignore[arg-type]
    assert type(result.ret) is int and result.ret == 0
    [out] = result.frames
    assert (out.data, type(out.type), out.type) == ("text é".encode(), int, 1)
    assert out.desc == {"raw": "\ufffd", "1": "2", "s": "?"}
    for text in (out.key, *out.desc, *out.desc.values()):
        text.encode("utf-8")  # every string can travel as a protobuf string


@pytest.mark.parametrize(("field", "value"), [("data", 12), ("desc", ["k"])])
def test_data_and_desc_of_the_wrong_kind_are_exec_failed(field: str, value: object) -> None:
    frame = Frame("r", b"x")
    setattr(frame, field, value)
    result = normalise(Outcome(frames=[frame]))
    assert result.ret == EXEC_FAILED and field in result.message
