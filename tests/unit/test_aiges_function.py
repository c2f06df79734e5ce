"""Registry functions as AIGES engines: argument conversion from text, kwargs mapping, errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from globalfunc.errors import BadArguments
from globalfunc.record import Param
from server.aiges.engine import Frame
from server.aiges.function_host import FunctionEngine, convert_argument, params_of


def p(annotation: str | None = None, default: str | None = None) -> Param:
    return Param("x", "positional_or_keyword", default, annotation)


@pytest.mark.parametrize(
    ("param", "text", "value"),
    [
        (p("int"), "42", 42),
        (p("float"), "-8", -8.0),
        (p("int | float"), "2.5", 2.5),
        (p("bool"), "true", True),
        (p("bool"), "0", False),
        (p("str"), " 7 ", " 7 "),
        (p("str | None"), "null", "null"),
        (p("int | None"), "null", None),
        (p("Optional[int]"), "none", None),
        (p("list[int]"), "[1, 2]", [1, 2]),
        (p("dict[str, Any]"), '{"a": 1}', {"a": 1}),
        (p("tuple"), "[1, 2]", (1, 2)),
        (p(None, "0"), "3", 3),
        (p(None, "0.5"), "3", 3.0),
        (p(None, "'s'"), "3", "3"),
        (p(None, "False"), "yes", True),
        (p(None, None), "[1]", [1]),
        (p(None, None), "plain words", "plain words"),
        (p("Any"), '{"k": null}', {"k": None}),
    ],
)
def test_convert_argument(param: Param, text: str, value: Any) -> None:
    got = convert_argument(param, text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("annotation", "text"), [("int", "1.5"), ("float", "soon"), ("list", "{")])
def test_convert_argument_rejects_with_a_useful_message(annotation: str, text: str) -> None:
    with pytest.raises(BadArguments, match=f"x={text!r}"):
        convert_argument(p(annotation), text)


def add(a: int, b: float = 1.0, *, tags: list[str] | None = None) -> dict[str, Any]:
    return {"sum": a + b, "tags": tags}


def lenient(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def resolver_for(
    func: Callable[..., Any],
) -> Callable[[str], tuple[Callable[..., Any], Sequence[Param]]]:
    return lambda name: (func, params_of(func))


def test_params_of_reads_signatures_as_source_text() -> None:
    assert [(q.name, q.kind, q.default, q.annotation) for q in params_of(add)] == [
        ("a", "positional_or_keyword", None, "int"),
        ("b", "positional_or_keyword", "1.0", "float"),
        ("tags", "keyword_only", "None", "list[str] | None"),
    ]


def test_params_and_payloads_become_typed_kwargs() -> None:
    engine = FunctionEngine("Pkg.add", resolver_for(add))
    assert engine.init({}) == 0
    out = engine.once({"a": "2", "b": "0.5"}, [Frame("tags", b'["x"]')], "t")
    assert out.ret == 0
    assert [(f.key, json.loads(f.data), f.desc["format"]) for f in out.frames] == [
        ("result", {"sum": 2.5, "tags": ["x"]}, "json")
    ]
    spread = engine.once({}, [Frame("kwargs", b'{"a": 1, "b": 2}')], "t")
    assert json.loads(spread.frames[0].data) == {"sum": 3, "tags": None}


@pytest.mark.parametrize(
    ("params", "frames", "needle"),
    [
        ({}, [], "needs a"),
        ({"a": "1"}, [Frame("nope", b"plain")], "'nope' is not a parameter"),
        ({"a": "1"}, [Frame("kwargs", b'{"c": 1}')], "has no parameter c"),
        ({"a": "one"}, [], "a='one'"),
    ],
)
def test_bad_requests_answer_10106(
    params: dict[str, str], frames: list[Frame], needle: str
) -> None:
    engine = FunctionEngine("Pkg.add", resolver_for(add))
    engine.init({})
    out = engine.once(params, frames, "t")
    assert out.ret == 10106 and not out.frames and needle in out.message


def test_var_keyword_functions_take_unknown_names_as_text() -> None:
    engine = FunctionEngine("Pkg.lenient", resolver_for(lenient))
    engine.init({})
    out = engine.once({"z": "1"}, [Frame("note", b"hi")], "t")
    assert json.loads(out.frames[0].data) == {"z": "1", "note": "hi"}


def test_raising_and_unserializable_results_answer_30003() -> None:
    def boom() -> None:
        raise ZeroDivisionError("nope")

    def opaque() -> object:
        return object()

    for func in (boom, opaque):
        engine = FunctionEngine("Pkg.f", resolver_for(func))
        engine.init({})
        assert engine.once({}, [], "t").ret == 30003


def test_unresolvable_function_fails_init_and_sessions_are_refused() -> None:
    def missing(name: str) -> Any:
        raise LookupError(name)

    engine = FunctionEngine("Pkg.gone", missing)
    assert engine.init({}) == 30001
    assert engine.once({}, [], "t").ret == 30001
    assert engine.create({}, "s", "t") == ("", 30003)
