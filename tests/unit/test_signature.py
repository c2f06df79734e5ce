"""The argument check and its schema (globalfunc.signature.CallSpec), from annotation text.

Cases come from a review that attacked the checker: parameter names pydantic would take
for itself, a cache keyed by object identity, values sent with type tags, ``*args`` and
``**kwargs``, types the wire format had no tag for.
"""

from __future__ import annotations

import gc
import uuid

import pytest

from globalfunc import jsoncodec
from globalfunc.errors import BadArguments
from globalfunc.record import Param
from globalfunc.signature import CallSpec


def _p(
    name: str,
    annotation: str | None = None,
    default: str | None = None,
    kind: str = "positional_or_keyword",
) -> Param:
    return Param(name, kind, default, annotation)


@pytest.mark.parametrize("name", ["model_config", "_x", "json", "schema", "model_fields"])
def test_every_parameter_name_is_checked_and_described(name: str) -> None:
    spec = CallSpec("T.f", [_p(name, "int", "0")])
    assert spec.request_schema()["properties"][name] == {"default": 0, "type": "integer"}
    assert spec.check([], {name: 3}) == ([], {name: 3})
    with pytest.raises(BadArguments, match=f"argument '{name}' of T.f must be int"):
        spec.check([], {name: "x"})


def test_checks_do_not_leak_between_specs_of_different_types() -> None:
    refused = 0
    for i in range(600):  # specs built and dropped: a cache keyed by id() reused their models
        kind = "int" if i % 2 else "str"
        spec = CallSpec(f"P.f{i}", [_p("x", kind)])
        try:
            spec.check([], {"x": 1 if kind == "int" else "one"})
        except BadArguments:
            refused += 1
        del spec
        gc.collect(0)
    assert refused == 0


def test_tagged_values_are_checked_and_arrive_as_checked() -> None:
    spec = CallSpec("T.f", [_p("n", "int"), _p("items", "list[int] | None", "None")])
    with pytest.raises(BadArguments, match="argument 'n'"):
        spec.check([], {"n": jsoncodec.encode(b"\x00\x00")})
    _, kwargs = spec.check([], {"n": 1, "items": jsoncodec.encode((1, 2))})  # a tuple: a list
    assert jsoncodec.decode(kwargs["items"]) == [1, 2]
    with pytest.raises(BadArguments, match="argument 'items"):
        spec.check([], {"n": 1, "items": [1, jsoncodec.encode(b"x")]})


def test_star_args_and_star_kwargs_are_checked() -> None:
    spec = CallSpec(
        "T.v",
        [
            _p("a", "int"),
            _p("rest", "int", kind="var_positional"),
            _p("kw", "int", kind="var_keyword"),
        ],
    )
    assert spec.check([1, 2, 3], {"e": 4}) == ([1, 2, 3], {"e": 4})
    with pytest.raises(BadArguments, match="argument 'rest"):
        spec.check([1, "x"], {})
    with pytest.raises(BadArguments, match="argument 'kw"):
        spec.check([1], {"e": "no"})


def test_uuid_timedelta_and_int_keys_reach_the_function_as_their_types() -> None:
    spec = CallSpec("T.w", [_p("v", "uuid.UUID"), _p("t", "timedelta"), _p("d", "dict[int, str]")])
    given = {"v": "12345678-1234-5678-1234-567812345678", "t": "PT1S", "d": {"1": "a"}}
    _, kwargs = spec.check([], given)
    v, t, d = (jsoncodec.decode(kwargs[k]) for k in ("v", "t", "d"))
    assert v == uuid.UUID(given["v"]) and t.total_seconds() == 1 and d == {1: "a"}


def test_a_set_schema_does_not_promise_to_refuse_duplicates() -> None:
    spec = CallSpec("T.s", [_p("s", "set[int]")])
    assert "uniqueItems" not in str(spec.request_schema())
    _, kwargs = spec.check([], {"s": [1, 1, 2]})
    assert jsoncodec.decode(kwargs["s"]) == {1, 2}
