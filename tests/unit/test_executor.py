"""The inline executor and argument checks: results, errors with type and message, versions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from gfgo.resolve import Resolver
from globalfunc.errors import BadArguments, ExecutionError, FunctionNotFound, InvalidName
from globalfunc.executor import ArgSpec, InlineExecutor
from globalfunc.registry import Registry
from globalfunc.scan import Scanner

FUNCS = Path(__file__).resolve().parents[1] / "data" / "funcs"


@pytest.fixture
def inline(tmp_path: Path) -> InlineExecutor:
    return InlineExecutor(Resolver(FUNCS, cache_dir=tmp_path))


def test_call_returns_the_value(inline: InlineExecutor) -> None:
    assert inline.call("Codec.echo", kwargs={"value": [1, 2]}) == [1, 2]
    assert inline.call("Codec.positional", args=[1, 2], kwargs={"d": 9}) == [1, 2, 3, 9]


def test_call_json_serializes_with_the_codec(inline: InlineExecutor) -> None:
    out = asyncio.run(inline.call_json("Codec.make_bytes", kwargs={"n": 2}))
    assert orjson.loads(out) == {"__gf__": "bytes", "b64": "AAE="}
    plain = asyncio.run(inline.call_json("Codec.echo", kwargs={"value": (1, 2)}, tagged=False))
    assert orjson.loads(plain) == [1, 2]


def test_user_exception_keeps_type_and_message_without_traceback(inline: InlineExecutor) -> None:
    with pytest.raises(ExecutionError) as info:
        inline.call("Misbehave.raise_error", kwargs={"message": "bad thing"})
    err = info.value
    assert type(err) is ExecutionError
    assert err.details["exc_type"] == "ValueError"
    assert err.details["exc_message"] == "bad thing"
    assert "traceback" not in err.details
    assert isinstance(err.__cause__, ValueError)
    assert "Misbehave.raise_error raised ValueError: bad thing" in str(err)


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    ex = InlineExecutor(Resolver(FUNCS, cache_dir=tmp_path), debug=True)
    with pytest.raises(ExecutionError) as info:
        ex.call("Misbehave.raise_error")
    assert "Traceback" in info.value.details["traceback"]
    assert "raise_error.py" in info.value.details["traceback"]


def test_system_exit_is_contained(inline: InlineExecutor) -> None:
    with pytest.raises(ExecutionError, match="SystemExit"):
        inline.call("Misbehave.exit_raise")


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "fragment"),
    [
        ("Codec.type_name", [], {"nope": 1}, "unexpected keyword argument 'nope'"),
        ("Codec.positional", [1], {}, "missing a required argument: 'b'"),
        ("Codec.positional", [], {"a": 1, "b": 2}, "positional only"),
        ("Codec.positional", [1, 2, 3, 4], {}, "too many positional arguments"),
    ],
)
def test_bad_arguments_show_the_signature(
    inline: InlineExecutor, name: str, args: list[object], kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(BadArguments) as info:
        inline.call(name, args, kwargs)
    assert fragment in str(info.value)
    assert info.value.details["signature"].startswith(name + "(")
    assert info.value.http_status == 422


def test_type_error_inside_the_function_is_an_execution_error(tmp_path: Path) -> None:
    # From a registry: content-addressed module names, so no clash with another "Base"
    # some other test imported from a folder.
    base = FUNCS.parents[2] / "packages"
    registry = Registry.open(f"sqlite://{tmp_path / 'r.db'}")
    registry.save(Scanner(base).scan_file(base / "Base" / "inverse_time_str.py"))
    ex = InlineExecutor(Resolver(registry, cache_dir=tmp_path / "cache"))
    with pytest.raises(ExecutionError) as info:
        ex.call("Base.inverse_time_str", kwargs={"time_str": 5})
    assert not isinstance(info.value, BadArguments)
    assert info.value.details["exc_type"] == "TypeError"
    registry.close()


def test_unknown_and_invalid_names(inline: InlineExecutor) -> None:
    with pytest.raises(FunctionNotFound):
        inline.call("Codec.missing")
    with pytest.raises(InvalidName):
        inline.call("Codec.__init__")
    with pytest.raises(InvalidName):
        inline.call("Codec.echo.__globals__")


def test_argspec_fast_path_and_var_keyword() -> None:
    def f(a, b=1, *, c):  # type: ignore[no-untyped-def]
        return a

    spec = ArgSpec("P.f", f)
    spec.check((), {"a": 1, "c": 2})
    with pytest.raises(BadArguments, match="'c'"):
        spec.check((), {"a": 1})
    with pytest.raises(BadArguments):
        spec.check((), {"a": 1, "c": 2, "zz": 3})

    def g(**kw):  # type: ignore[no-untyped-def]
        return kw

    ArgSpec("P.g", g).check((), {"anything": 1})
    with pytest.raises(BadArguments):
        ArgSpec("P.g", g).check((1,), {})


def test_a_new_registry_version_is_picked_up_by_hash(tmp_path: Path) -> None:
    root = tmp_path / "pkgs"
    (root / "Pkg").mkdir(parents=True)
    file = root / "Pkg" / "answer.py"
    file.write_text("def answer():\n    return 1\n")
    registry = Registry.open(f"sqlite://{tmp_path / 'r.db'}")
    scanner = Scanner(root)
    registry.save(scanner.scan_file(file))
    ex = InlineExecutor(Resolver(registry, cache_dir=tmp_path / "cache"))
    v1 = registry.get("Pkg.answer").sha256
    assert asyncio.run(ex.call_json("Pkg.answer", version=v1)) == b"1"
    file.write_text("def answer():\n    return 2\n")
    registry.save(scanner.scan_file(file))
    v2 = registry.get("Pkg.answer").sha256
    assert v2 != v1
    assert asyncio.run(ex.call_json("Pkg.answer", version=v1)) == b"1"  # same hash: cached
    assert asyncio.run(ex.call_json("Pkg.answer", version=v2)) == b"2"
    registry.close()


def test_async_functions_are_awaited(tmp_path: Path) -> None:
    root = tmp_path / "pkgs"
    (root / "Pkg").mkdir(parents=True)
    (root / "Pkg" / "later.py").write_text(
        "import asyncio\n\nasync def later(x=1):\n    await asyncio.sleep(0)\n    return x * 2\n"
    )
    ex = InlineExecutor(Resolver(root, cache_dir=tmp_path / "c"))
    assert asyncio.run(ex.call_json("Pkg.later", kwargs={"x": 4})) == b"8"
    assert ex.call("Pkg.later", kwargs={"x": 5}) == 10
