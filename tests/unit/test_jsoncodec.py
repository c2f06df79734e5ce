"""The shared JSON translation: every supported type round-trips, everything else is named."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path, PurePosixPath

import orjson
import pytest

from globalfunc import jsoncodec
from globalfunc.errors import (
    InvalidRequest,
    NestingTooDeep,
    ResultNotFinite,
    ResultNotSerializable,
)

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


def test_non_string_dict_keys_survive_tagged_and_become_strings_untagged() -> None:
    value = {1: "a", (2, 3): {None: 4.5}}
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
    assert orjson.loads(jsoncodec.dumps({1: "a"}, tagged=False)) == {"1": "a"}


def test_uuid_and_timedelta_round_trip() -> None:
    import datetime as dt
    import uuid

    value = {"id": uuid.uuid4(), "wait": dt.timedelta(days=-1, seconds=5, microseconds=9)}
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value


def test_unserializable_result_names_its_type() -> None:
    class Thing:
        pass

    with pytest.raises(ResultNotSerializable, match="Thing") as info:
        jsoncodec.dumps({"x": [Thing()]})
    assert info.value.details["type"].endswith("Thing")
    with pytest.raises(ResultNotSerializable, match="generator"):
        jsoncodec.dumps(i for i in range(3))


@pytest.mark.parametrize(
    "value",
    [2**70, -(2**70), 10**30, [2**64, 1], {"n": -(10**40), "m": [2**63]}, (2**100,), {2**65}],
)
def test_integers_of_any_size_round_trip_exactly(value: object) -> None:
    back = jsoncodec.loads(jsoncodec.dumps(value))
    assert back == value
    assert type(back) is type(value)


def test_loads_reads_integer_literals_past_64_bits_as_int() -> None:
    raw = b'{"a": 1000000000000000000000000000000, "b": [-18446744073709551617], "c": 1e30}'
    value = jsoncodec.loads(raw)
    assert value["a"] == 10**30 and type(value["a"]) is int
    assert value["b"] == [-(2**64) - 1] and type(value["b"][0]) is int
    assert value["c"] == 1e30 and type(value["c"]) is float  # a float literal stays a float
    assert jsoncodec.loads(b"123456789012345678901234567890") == 123456789012345678901234567890
    assert jsoncodec.loads("[9223372036854775807]") == [2**63 - 1]


@pytest.mark.parametrize(
    "value",
    [10**308, 10**309, -(10**309), int("7" * 1000), [1, {"n": -int("9" * 2000)}], (10**400,)],
)
def test_integers_past_308_digits_round_trip_exactly(value: object) -> None:
    """orjson refuses such a literal as infinite; loads must read it exactly all the same."""
    back = jsoncodec.loads(jsoncodec.dumps(value))
    assert back == value and type(back) is type(value)


def test_a_huge_integer_keeps_the_nesting_limit_and_the_tags() -> None:
    big = b"1" + b"0" * 400
    with pytest.raises(NestingTooDeep):
        jsoncodec.loads(b"[" * 6 + big + b"]" * 6, max_depth=5)
    assert jsoncodec.loads(b"[" * 5 + big + b"]" * 5, max_depth=5) == [[[[[10**400]]]]]
    tagged = b'{"__gf__": "tuple", "items": [' + big + b"]}"
    assert jsoncodec.loads(tagged) == (10**400,)
    assert jsoncodec.loads(tagged, decode_tags=False) == {"__gf__": "tuple", "items": [10**400]}


@pytest.mark.parametrize("raw", [b"1e400", b"[1, -1e999]", b"[1e309, " + b"1" * 400 + b"]"])
def test_a_float_literal_infinite_as_a_double_is_still_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="infinity when parsed as double"):
        jsoncodec.loads(raw)


@pytest.mark.parametrize(
    ("value", "what", "where"),
    [
        (float("nan"), "NaN", "result"),
        ([1.0, float("inf")], "Infinity", "result[1]"),
        ({"a": {"b": (1, float("-inf"))}}, "-Infinity", "result['a']['b'][1]"),
        (complex(float("nan"), 0), "NaN", "result"),
    ],
)
def test_nan_or_infinity_in_a_result_is_a_named_error(value: object, what: str, where: str) -> None:
    with pytest.raises(ResultNotFinite) as info:
        jsoncodec.dumps(value)
    err = info.value
    assert isinstance(err, ResultNotSerializable) and err.http_status == 500
    assert err.details == {"value": what, "where": where}
    assert what in err.message and where in err.message


def test_nan_in_a_numpy_scalar_is_a_named_error() -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(ResultNotFinite, match=r"NaN at result\['x'\]"):
        jsoncodec.dumps({"x": np.float64("nan")})


@pytest.mark.parametrize("raw", [b"[NaN]", b'{"a": Infinity}', b"-Infinity"])
def test_nan_or_infinity_in_input_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        jsoncodec.loads(raw)


def _nested(depth: int) -> bytes:
    return b'{"a": ' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    value = jsoncodec.loads(_nested(64), max_depth=64)
    for _ in range(63):
        value = value["a"]
    assert value == [1]


@pytest.mark.parametrize("depth", [65, 256, 1025, 5000])
def test_nesting_past_the_limit_is_nesting_too_deep(depth: int) -> None:
    with pytest.raises(NestingTooDeep, match="64 levels") as info:
        jsoncodec.loads(_nested(depth), max_depth=64)
    assert info.value.http_status == 400 and info.value.details == {"limit": 64}
    # with the exact-integer fallback as well
    with pytest.raises(NestingTooDeep):
        jsoncodec.loads(b"[100000000000000000000, " + _nested(depth) + b"]", max_depth=64)


def test_without_a_limit_only_the_parser_bounds_nesting() -> None:
    assert jsoncodec.loads(_nested(500)) is not None
    with pytest.raises(NestingTooDeep):
        jsoncodec.loads(b"[" * 5000 + b"]" * 5000)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert jsoncodec.loads(b'{"a": "' + b"[{" * 500 + b'"}', max_depth=2) == {"a": "[{" * 500}


def test_a_result_too_deep_to_write_is_not_serializable() -> None:
    value: list[object] = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(ResultNotSerializable, match="nested"):
        jsoncodec.dumps(value)


def test_object_dict_keys_are_rejected() -> None:
    with pytest.raises(ResultNotSerializable, match="key"):
        jsoncodec.dumps({(1, 2): "x"}, tagged=False)  # JSON has no tuple keys
    with pytest.raises(ResultNotSerializable, match="object"):
        jsoncodec.dumps({object(): "x"})


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
