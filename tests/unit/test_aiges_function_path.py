"""The AIGES function host runs its calls through the one call path (``globalfunc.invoke``).

Over a packages folder scanned into an in-memory registry, or over a registry: the look-up
is the catalog's (at init), the argument check the executor's, errors and results are
translated and serialized by the invoke path (exact big integers, NaN refused), and every
call is seen by the invoker's observer.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from globalfunc.errors import ScanError
from globalfunc.registry import Registry
from globalfunc.scan import Scanner
from server.aiges.engine import Frame, Outcome
from server.aiges.function_host import FunctionEngine, open_functions

FILES = {
    "add": """
        def add(a: int, b: int = 1) -> int:
            return a + b
    """,
    "positional": """
        def positional(a, /, b=2):
            return [a, b]
    """,
    "huge": """
        def huge(n: int = 30):
            return {"value": 10**n}
    """,
    "not_a_number": """
        def not_a_number():
            return [1.0, float("nan")]
    """,
    "later": """
        import asyncio

        async def later(x: int = 1):
            await asyncio.sleep(0)
            return x * 2
    """,
    "fails_to_import": """
        import no_such_module_anywhere

        def fails_to_import():
            return 1
    """,
    "raises": """
        def raises(message: str = "boom"):
            raise ValueError(message)
    """,
}


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    root = tmp_path / "packages"
    (root / "Host").mkdir(parents=True)
    for name, code in FILES.items():
        (root / "Host" / f"{name}.py").write_text(textwrap.dedent(code).lstrip())
    return root


Observed = list[tuple[str, int, str | None]]


def engine(packages: Path, tmp_path: Path, name: str, seen: Observed) -> FunctionEngine:
    invoker = open_functions(packages, cache_dir=tmp_path / "cache")
    invoker.observe = lambda fn, status, _s, err: seen.append((fn, status, err))
    host = FunctionEngine(name, invoker)
    assert host.init({}) == 0
    return host


def result(out: Outcome) -> Any:
    assert out.ret == 0, out
    return json.loads(out.frames[0].data)


def test_calls_go_through_the_invoker(packages: Path, tmp_path: Path) -> None:
    seen: Observed = []
    host = engine(packages, tmp_path, "Host.add", seen)
    assert result(host.once({"a": "2", "b": "3"}, [], "t")) == 5
    assert result(host.once({}, [Frame("kwargs", b'{"a": 40}')], "t")) == 41
    assert seen == [("Host.add", 200, None), ("Host.add", 200, None)]


def test_the_argument_check_is_the_executors(packages: Path, tmp_path: Path) -> None:
    seen: Observed = []
    host = engine(packages, tmp_path, "Host.positional", seen)
    out = host.once({"a": "1"}, [], "t")  # a keyword for a positional-only parameter
    assert out.ret == 10106 and "arguments do not fit Host.positional(a, /, b=2)" in out.message
    assert seen == [("Host.positional", 422, "BadArguments")]


def test_errors_and_results_are_translated_by_the_invoke_path(
    packages: Path, tmp_path: Path
) -> None:
    seen: Observed = []
    assert result(engine(packages, tmp_path, "Host.huge", seen).once({}, [], "t")) == {
        "value": 10**30
    }
    nan = engine(packages, tmp_path, "Host.not_a_number", seen).once({}, [], "t")
    assert nan.ret == 30003 and "holds NaN at result[1]" in nan.message
    raised = engine(packages, tmp_path, "Host.raises", seen).once({"message": "no"}, [], "t")
    assert raised.ret == 30003 and raised.message == "Host.raises raised ValueError: no"
    assert [s[1:] for s in seen] == [
        (200, None),
        (500, "ResultNotFinite"),
        (500, "ExecutionError"),
    ]


def test_async_functions_are_awaited(packages: Path, tmp_path: Path) -> None:
    host = engine(packages, tmp_path, "Host.later", [])
    assert result(host.once({"x": "21"}, [], "t")) == 42


def test_init_fails_for_unknown_names_and_files_that_do_not_import(
    packages: Path, tmp_path: Path
) -> None:
    invoker = open_functions(packages, cache_dir=tmp_path / "cache")
    assert FunctionEngine("Host.nope", invoker).init({}) == 30001
    assert FunctionEngine("Host.fails_to_import", invoker).init({}) == 30001
    assert FunctionEngine("Host.add", invoker).init({}) == 0


def test_the_version_found_at_init_is_the_one_that_runs(packages: Path, tmp_path: Path) -> None:
    registry = Registry.open("sqlite://:memory:")
    registry.save_many(list(Scanner(packages).scan().functions.values()))
    host = FunctionEngine("Host.add", open_functions(registry, cache_dir=tmp_path / "cache"))
    assert host.init({}) == 0
    first = host.record
    assert first is not None
    (packages / "Host" / "add.py").write_text("def add(a: int, b: int = 1) -> int:\n    return 0\n")
    registry.save_many(list(Scanner(packages).scan().functions.values()))
    assert registry.get("Host.add").sha256 != first.sha256
    assert result(host.once({"a": "2"}, [], "t")) == 3  # still the version it was started with
    fresh = FunctionEngine("Host.add", open_functions(registry, cache_dir=tmp_path / "cache2"))
    assert fresh.init({}) == 0 and result(fresh.once({"a": "2"}, [], "t")) == 0


def test_a_missing_packages_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="is not a folder"):
        open_functions(tmp_path / "absent")
