"""The shared JSON translation: every supported type round-trips, everything else is named."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path, PurePosixPath

import orjson
import pytest

from globalfunc import jsoncodec
from globalfunc.errors import InvalidRequest, ResultNotSerializable

VALUES = [
    None,
    True,
    0,
    -7,
    1.5,
    "text é 中",
    [1, "a", None],
    {"a": 1, "b": [1, 2]},
    b"\x00\x01\xff",
    bytearray(b"abc"),
    dt.datetime(2024, 2, 15, 11, 11, 11, 123456),
    dt.datetime(2024, 2, 15, 11, 11, 11, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    dt.date(2024, 2, 15),
    dt.time(11, 11, 11),
    Decimal("1.10"),
    Decimal("-0.000001"),
    {1, 2, 3},
    frozenset({"a", "b"}),
    (1, (2, 3), [4, (5,)]),
    Path("/tmp/x.pkl"),
    complex(1, -2),
    {"__gf__": "bytes", "b64": "not a tag, user data"},
    {"nested": {"__gf__": 1, "t": (1, 2)}},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip(value: object) -> None:
    back = jsoncodec.loads(jsoncodec.dumps(value))
    expected = bytes(value) if isinstance(value, bytearray) else value
    assert back == expected
    assert type(back) is type(expected)


def test_bytes_travel_as_base64_with_a_marker() -> None:
    assert orjson.loads(jsoncodec.dumps(b"\x00\x01\x02\x03")) == {
        "__gf__": "bytes",
        "b64": "AAECAw==",
    }


def test_untagged_mode_writes_tuples_as_lists_like_json_dumps() -> None:
    assert orjson.loads(jsoncodec.dumps((1, (2, 3)), tagged=False)) == [1, [2, 3]]
    assert jsoncodec.loads(jsoncodec.dumps((1, 2), tagged=False)) == [1, 2]


def test_int_dict_keys_become_strings() -> None:
    assert jsoncodec.loads(jsoncodec.dumps({1: "a"})) == {"1": "a"}


def test_unserializable_result_names_its_type() -> None:
    class Thing:
        pass

    with pytest.raises(ResultNotSerializable, match="Thing") as info:
        jsoncodec.dumps({"x": [Thing()]})
    assert info.value.details["type"].endswith("Thing")
    with pytest.raises(ResultNotSerializable, match="generator"):
        jsoncodec.dumps(i for i in range(3))


def test_huge_int_is_not_serializable() -> None:
    with pytest.raises(ResultNotSerializable):
        jsoncodec.dumps(2**70)
    with pytest.raises(ResultNotSerializable):
        jsoncodec.dumps([2**70])


def test_object_dict_keys_are_rejected() -> None:
    with pytest.raises(ResultNotSerializable, match="key"):
        jsoncodec.dumps({(1, 2): "x"})


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"__gf__": "nope"}',
        b'{"__gf__": "bytes", "b64": "***"}',
        b'{"__gf__": "bytes"}',
        b'{"__gf__": "decimal", "str": "abc"}',
        b'{"__gf__": "datetime", "iso": 5}',
        b'{"__gf__": "set", "items": [[1]]}',
        b'{"__gf__": "ndarray", "dtype": "|O", "shape": [1], "b64": ""}',
    ],
)
def test_malformed_input_is_an_invalid_request(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        jsoncodec.loads(raw)


def test_loads_skips_the_walk_when_no_tag_is_present() -> None:
    assert not jsoncodec.needs_decode(b'{"a": [1, 2]}')
    assert jsoncodec.needs_decode(b'{"a": {"__gf__": "set", "items": []}}')
    assert jsoncodec.loads('{"a": {"__gf__": "set", "items": [1]}}') == {"a": {1}}


def test_pure_paths_encode_as_paths() -> None:
    assert jsoncodec.loads(jsoncodec.dumps(PurePosixPath("a/b"))) == Path("a/b")


def test_numpy_arrays_and_scalars() -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not contiguous
    back = jsoncodec.loads(jsoncodec.dumps({"a": arr}))["a"]
    assert back.dtype == np.float32 and back.shape == (3, 2)
    assert (back == arr).all()
    assert jsoncodec.loads(jsoncodec.dumps(np.int64(7))) == 7
    assert jsoncodec.loads(jsoncodec.dumps(np.array(["a", None], dtype=object))) == ["a", None]
