"""Unit tests for the functions in packages/Base: behaviour, and annotations the server can check.

Not covered here: the server's argument checker itself (tests of globalfunc/server).
"""

import ast
import hashlib
import json
import os
import socket
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packages"))

from Base import (
    chunk_list,
    clear_digits,
    create_folder,
    dedup_keep_order,
    flat_dict,
    from_json_file,
    from_pickle,
    get_machine_name,
    inverse_time_str,
    md5_text,
    popen,
    popen1,
    safe_div,
    slug,
    time_str,
    to_json_file,
    to_pickle,
)


@pytest.fixture
def utc_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the test with TZ=UTC, then restore the previous time zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def shanghai_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the test with a fixed UTC+8 zone, then restore the previous time zone."""
    monkeypatch.setenv("TZ", "CST-8")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- to_pickle / from_pickle -------------------------------------------------------


def test_to_pickle_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = {"a": [1, 2, 3], "b": {"c": (4, 5)}, "d": None}
    full = to_pickle(data=data, file_name="obj", path=str(tmp_path) + "/")
    assert full == str(tmp_path) + "/obj.pkl"
    assert Path(full).is_file()
    assert capsys.readouterr().out == f"data save to pickle:  {full}\n"
    assert from_pickle(file_name="obj", path=str(tmp_path) + "/") == data


def test_to_pickle_path_without_trailing_slash(tmp_path: Path) -> None:
    full = to_pickle(data=[1, 2], file_name="x", path=str(tmp_path))
    assert full == os.path.join(str(tmp_path), "x.pkl")
    assert from_pickle(file_name="x", path=str(tmp_path)) == [1, 2]


def test_to_pickle_default_path_is_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert to_pickle(data="hi", file_name="cwd") == "./cwd.pkl"
    assert (tmp_path / "cwd.pkl").is_file()
    assert from_pickle(file_name="cwd") == "hi"


def test_to_pickle_stores_none(tmp_path: Path) -> None:
    to_pickle(data=None, file_name="none", path=str(tmp_path))
    assert from_pickle(file_name="none", path=str(tmp_path)) is None


def test_pickle_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file_name"):
        to_pickle(data=1)
    with pytest.raises(TypeError, match="file_name"):
        to_pickle(data=1, file_name=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="file_name"):
        from_pickle()
    with pytest.raises(FileNotFoundError):
        from_pickle(file_name="missing", path=str(tmp_path))


# --- inverse_time_str / time_str ---------------------------------------------------


def test_inverse_time_str_design_answer(utc_tz: None) -> None:
    result = inverse_time_str(time_str="2024-02-15 11:11:11", bias_hours=-8)
    assert result == 1707966671
    assert isinstance(result, int)


def test_inverse_time_str_no_bias(utc_tz: None) -> None:
    assert inverse_time_str(time_str="1970-01-01 00:00:00") == 0
    assert inverse_time_str(time_str="2024-02-15 11:11:11") == 1707995471


def test_inverse_time_str_fractional_bias_gives_float(utc_tz: None) -> None:
    result = inverse_time_str(time_str="1970-01-01 00:00:00", bias_hours=0.0001)
    assert isinstance(result, float)
    assert result == pytest.approx(0.36)
    half = inverse_time_str(time_str="1970-01-01 00:00:00", bias_hours=0.5)
    assert half == 1800
    assert isinstance(half, int)


def test_inverse_time_str_uses_local_zone(shanghai_tz: None) -> None:
    assert inverse_time_str(time_str="2024-02-15 11:11:11") == 1707966671


def test_inverse_time_str_bad_input(utc_tz: None) -> None:
    with pytest.raises(ValueError, match="None"):
        inverse_time_str()
    with pytest.raises(TypeError, match="time_str"):
        inverse_time_str(time_str=1707966671)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2024/02/15"):
        inverse_time_str(time_str="2024/02/15")
    with pytest.raises(TypeError, match="bias_hours"):
        inverse_time_str(time_str="2024-02-15 11:11:11", bias_hours="8")  # type: ignore[arg-type]


def test_time_str_is_inverse_of_inverse_time_str(utc_tz: None) -> None:
    assert time_str(timestamp=1707966671, bias_hours=-8) == "2024-02-15 11:11:11"
    assert time_str(timestamp=1707995471) == "2024-02-15 11:11:11"
    for text in ("2000-01-01 00:00:00", "2024-02-29 23:59:59"):
        for bias in (-8, 0, 5.5):
            stamp = inverse_time_str(time_str=text, bias_hours=bias)
            assert time_str(timestamp=stamp, bias_hours=bias) == text


def test_time_str_format_and_now(utc_tz: None) -> None:
    assert time_str(timestamp=0, time_format="%Y%m%d") == "19700101"
    before = int(time.time())
    now_text = time_str()
    after = int(time.time())
    assert before <= inverse_time_str(time_str=now_text) <= after


def test_time_str_bad_input() -> None:
    with pytest.raises(TypeError, match="timestamp"):
        time_str(timestamp="0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="time_format"):
        time_str(timestamp=0, time_format=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bias_hours"):
        time_str(timestamp=0, bias_hours=None)  # type: ignore[arg-type]


# --- get_machine_name --------------------------------------------------------------


def test_get_machine_name_given() -> None:
    assert get_machine_name(given_name="box-1") == "box-1"
    assert get_machine_name(given_name="") == ""


def test_get_machine_name_hostname() -> None:
    assert get_machine_name() == socket.gethostname()


def test_get_machine_name_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise OSError("no hostname")

    monkeypatch.setattr(socket, "gethostname", broken)
    name = get_machine_name()
    expected = "xx"
    try:
        with open("/etc/hostname", encoding="utf-8") as handle:
            expected = handle.readline().strip() or "xx"
    except OSError:
        pass
    assert name == expected


def test_get_machine_name_bad_input() -> None:
    with pytest.raises(TypeError, match="given_name"):
        get_machine_name(given_name=42)  # type: ignore[arg-type]


# --- popen / popen1 ----------------------------------------------------------------


def test_popen_echo() -> None:
    assert popen(some_cmd="echo hello") == "hello\n"
    assert popen(some_cmd="true") == ""


def test_popen1_first_word() -> None:
    assert popen1(some_cmd="echo hello") == "hello"
    assert popen1(some_cmd="echo '  hello   world '") == "hello"
    assert popen1(some_cmd="true") == ""


def test_popen_bad_input() -> None:
    for func in (popen, popen1):
        with pytest.raises(ValueError, match="None"):
            func()
        with pytest.raises(ValueError, match="blank"):
            func(some_cmd="   ")
        with pytest.raises(TypeError, match="some_cmd"):
            func(some_cmd=["echo", "hi"])  # type: ignore[arg-type]


# --- flat_dict ---------------------------------------------------------------------


def test_flat_dict_nested() -> None:
    data = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": 3, "f": {}}
    assert flat_dict(data=data) == {"a.b": 1, "a.c.d": [1, 2], "e": 3, "f": {}}
    assert data == {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": 3, "f": {}}


def test_flat_dict_separator_and_empty() -> None:
    assert flat_dict(data={"a": {"b": {"c": 1}}}, sep="/") == {"a/b/c": 1}
    assert flat_dict(data={}) == {}


def test_flat_dict_bad_input() -> None:
    with pytest.raises(ValueError, match="None"):
        flat_dict()
    with pytest.raises(TypeError, match="dict"):
        flat_dict(data=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"a\.b"):
        flat_dict(data={"a.b": 1, "a": {"b": 2}})


# --- chunk_list --------------------------------------------------------------------


def test_chunk_list() -> None:
    assert chunk_list(items=[1, 2, 3, 4, 5], size=2) == [[1, 2], [3, 4], [5]]
    assert chunk_list(items=[1, 2, 3], size=3) == [[1, 2, 3]]
    assert chunk_list(items=[1, 2], size=10) == [[1, 2]]
    assert chunk_list(items=[], size=4) == []
    assert chunk_list(items=["a", "b"]) == [["a"], ["b"]]


def test_chunk_list_bad_input() -> None:
    with pytest.raises(ValueError, match="None"):
        chunk_list()
    with pytest.raises(ValueError, match="0"):
        chunk_list(items=[1], size=0)
    with pytest.raises(TypeError, match="size"):
        chunk_list(items=[1], size=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="items"):
        chunk_list(items="abc", size=1)  # type: ignore[arg-type]


# --- md5_text ----------------------------------------------------------------------


def test_md5_text() -> None:
    assert md5_text(text="hello") == "5d41402abc4b2a76b9719d911017c592"
    assert md5_text(text="") == "d41d8cd98f00b204e9800998ecf8427e"
    assert md5_text(text="héllo") == hashlib.md5("héllo".encode()).hexdigest()
    assert md5_text(text="héllo", encoding="latin-1") == hashlib.md5(b"h\xe9llo").hexdigest()


def test_md5_text_bad_input() -> None:
    with pytest.raises(ValueError, match="None"):
        md5_text()
    with pytest.raises(TypeError, match="text"):
        md5_text(text=b"hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no-such-codec"):
        md5_text(text="x", encoding="no-such-codec")


# --- clear_digits ------------------------------------------------------------------


def test_clear_digits() -> None:
    assert clear_digits(text="abc123def4") == "abcdef"
    assert clear_digits(text="2024-02-15") == "--"
    assert clear_digits(text="no digits") == "no digits"
    assert clear_digits(text="") == ""


def test_clear_digits_bad_input() -> None:
    with pytest.raises(ValueError, match="None"):
        clear_digits()
    with pytest.raises(TypeError, match="123"):
        clear_digits(text=123)  # type: ignore[arg-type]


# --- create_folder -----------------------------------------------------------------


def test_create_folder(tmp_path: Path) -> None:
    target = str(tmp_path / "a" / "b" / "c")
    assert create_folder(path=target) == target
    assert Path(target).is_dir()
    assert create_folder(path=target) == target


def test_create_folder_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path"):
        create_folder()
    with pytest.raises(TypeError, match="path"):
        create_folder(path=5)  # type: ignore[arg-type]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(FileExistsError):
        create_folder(path=str(a_file))


# --- to_json_file / from_json_file -------------------------------------------------


def test_json_file_round_trip(tmp_path: Path) -> None:
    data = {"name": "café", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    target = str(tmp_path / "out.json")
    assert to_json_file(data=data, file_path=target) == target
    text = Path(target).read_text(encoding="utf-8")
    assert "café" in text
    assert json.loads(text) == data
    assert from_json_file(file_path=target) == data


def test_json_file_compact(tmp_path: Path) -> None:
    target = str(tmp_path / "c.json")
    to_json_file(data={"a": 1}, file_path=target, indent=None)
    assert Path(target).read_text(encoding="utf-8") == '{"a": 1}'


def test_json_file_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file_path"):
        to_json_file(data={})
    with pytest.raises(TypeError):
        to_json_file(data={1, 2}, file_path=str(tmp_path / "s.json"))
    with pytest.raises(ValueError, match="file_path"):
        from_json_file()
    with pytest.raises(FileNotFoundError):
        from_json_file(file_path=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError):
        from_json_file(file_path=str(bad))


# --- dedup_keep_order --------------------------------------------------------------


def test_dedup_keep_order() -> None:
    assert dedup_keep_order(items=[3, 1, 3, 2, 1]) == [3, 1, 2]
    assert dedup_keep_order(items=["b", "a", "b"]) == ["b", "a"]
    assert dedup_keep_order(items=[]) == []


def test_dedup_keep_order_unhashable() -> None:
    items = [{"a": 1}, [1], {"a": 1}, 2, [1], 2]
    assert dedup_keep_order(items=items) == [{"a": 1}, [1], 2]
    assert items == [{"a": 1}, [1], {"a": 1}, 2, [1], 2]


def test_dedup_keep_order_bad_input() -> None:
    with pytest.raises(ValueError, match="None"):
        dedup_keep_order()
    with pytest.raises(TypeError, match="items"):
        dedup_keep_order(items="aab")  # type: ignore[arg-type]


# --- safe_div ----------------------------------------------------------------------


def test_safe_div() -> None:
    assert safe_div(numerator=1, denominator=4) == 0.25
    assert safe_div(numerator=-9, denominator=3) == -3.0
    assert safe_div(numerator=1, denominator=0) == 0.0
    assert safe_div(numerator=1, denominator=0.0, default=-1) == -1


def test_safe_div_bad_input() -> None:
    with pytest.raises(ValueError, match="denominator=None"):
        safe_div(numerator=1)
    with pytest.raises(TypeError, match="numerator"):
        safe_div(numerator="1", denominator=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="denominator"):
        safe_div(numerator=1, denominator=True)


# --- slug --------------------------------------------------------------------------


def test_slug() -> None:
    assert slug(text="  Hello, World!  ") == "hello-world"
    assert slug(text="Café au lait") == "cafe-au-lait"
    assert slug(text="Ünïcödé 2024 -- Test", sep="_") == "unicode_2024_test"
    assert slug(text="日本語") == ""


def test_slug_max_length() -> None:
    assert slug(text="hello world again", max_length=6) == "hello"
    assert slug(text="hello world again", max_length=11) == "hello-world"
    assert slug(text="hello", max_length=0) == "hello"


def test_slug_bad_input() -> None:
    with pytest.raises(ValueError, match="None"):
        slug()
    with pytest.raises(TypeError, match="text"):
        slug(text=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="-1"):
        slug(text="x", max_length=-1)


# --- annotations -------------------------------------------------------------------
# The server checks every call's arguments against these annotations (pydantic, strict,
# over JSON values) and publishes a schema per function from the same annotation TEXT,
# without importing the module. So each Base function must annotate every parameter and
# its return with names the checker can evaluate, and say whether a ``None`` default is
# accepted (``x: int | None = None``) or only the seed's placeholder (``x: str = None``,
# which the checker treats as required).

BASE_DIR = Path(__file__).resolve().parents[2] / "packages" / "Base"
ALLOWED_BUILTINS = {"int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "None"}
ALLOWED_TYPING = {"Any", "Literal", "Optional", "Union"}


def _base_functions() -> list[tuple[Path, ast.Module, ast.FunctionDef]]:
    found = []
    for path in sorted(BASE_DIR.glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in module.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                found.append((path, module, node))
    return found


def _all_args(func: ast.FunctionDef) -> list[ast.arg]:
    a = func.args
    extra = [x for x in (a.vararg, a.kwarg) if x is not None]
    return [*a.posonlyargs, *a.args, *a.kwonlyargs, *extra]


def _imported_names(module: ast.Module) -> dict[str, str]:
    """``{local name: "typing.Any"}`` for the file's ``from typing/collections.abc import``."""
    names: dict[str, str] = {}
    for node in module.body:
        if isinstance(node, ast.ImportFrom) and node.module in ("typing", "collections.abc"):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _names_in(annotation: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)}


def _admits_none(annotation: ast.expr, imported: dict[str, str]) -> bool:
    """Whether the annotation lets ``None`` through: None, Any, Optional[...], ``| None``, Union."""
    if isinstance(annotation, ast.Constant):
        return annotation.value is None
    if isinstance(annotation, ast.Name):
        return imported.get(annotation.id) == "typing.Any"
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _admits_none(annotation.left, imported) or _admits_none(annotation.right, imported)
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        origin = imported.get(annotation.value.id)
        if origin == "typing.Optional":
            return True
        if origin == "typing.Union":
            members = annotation.slice
            items = members.elts if isinstance(members, ast.Tuple) else [members]
            return any(_admits_none(item, imported) for item in items)
    return False


def test_every_base_function_is_exported_and_seen() -> None:
    import Base

    names = {func.name for _, _, func in _base_functions()}
    exported = {name for name in dir(Base) if callable(getattr(Base, name))}
    assert names == exported
    assert len(names) == 17


@pytest.mark.parametrize(
    "path,func", [(p, f) for p, _, f in _base_functions()], ids=lambda v: getattr(v, "name", "")
)
def test_base_function_is_fully_annotated(path: Path, func: ast.FunctionDef) -> None:
    missing = [arg.arg for arg in _all_args(func) if arg.annotation is None]
    assert not missing, f"{path.name}: {func.name} has unannotated parameters {missing}"
    assert func.returns is not None, f"{path.name}: {func.name} has no return annotation"


def test_base_annotations_use_only_names_the_checker_evaluates() -> None:
    for path, module, func in _base_functions():
        imported = _imported_names(module)
        allowed = ALLOWED_BUILTINS | {
            name
            for name, origin in imported.items()
            if origin.startswith("collections.abc.") or origin.split(".")[1] in ALLOWED_TYPING
        }
        annotations = [a.annotation for a in _all_args(func) if a.annotation is not None]
        for annotation in [*annotations, func.returns]:
            assert annotation is not None
            assert not isinstance(annotation, ast.Constant) or annotation.value is None, (
                f"{func.name}: a string annotation {ast.unparse(annotation)!r}"
            )
            unknown = _names_in(annotation) - allowed
            assert not unknown, (
                f"{path.name}: {func.name} uses {unknown} in {ast.unparse(annotation)}"
            )


def test_base_annotations_build_strict_json_schemas_from_their_text() -> None:
    """What the checker does: evaluate the text (no module import) and build a strict adapter."""
    import collections.abc
    import typing

    from pydantic import ConfigDict, TypeAdapter

    for _, module, func in _base_functions():
        namespace: dict[str, Any] = {}
        for name, origin in _imported_names(module).items():
            owner, attr = origin.rsplit(".", 1)
            namespace[name] = getattr(typing if owner == "typing" else collections.abc, attr)
        annotations = [a.annotation for a in _all_args(func) if a.annotation is not None]
        for annotation in [*annotations, func.returns]:
            assert annotation is not None
            hint = eval(ast.unparse(annotation), {"__builtins__": __builtins__}, namespace)
            adapter = TypeAdapter(hint, config=ConfigDict(strict=True))
            assert isinstance(adapter.json_schema(), dict)


def _valid_kwargs(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """One call per function that succeeds; the None test leaves one parameter out of it."""
    (tmp_path / "in.json").write_text('{"a": 1}', encoding="utf-8")
    to_pickle(data=1, file_name="in", path=str(tmp_path))
    return {
        "chunk_list": {"items": [1, 2, 3]},
        "clear_digits": {"text": "a1"},
        "create_folder": {"path": str(tmp_path / "made")},
        "dedup_keep_order": {"items": [1, 1]},
        "flat_dict": {"data": {"a": {"b": 1}}},
        "from_json_file": {"file_path": str(tmp_path / "in.json")},
        "from_pickle": {"file_name": "in", "path": str(tmp_path)},
        "get_machine_name": {"given_name": "box"},
        "inverse_time_str": {"time_str": "2024-02-15 11:11:11"},
        "md5_text": {"text": "x"},
        "popen": {"some_cmd": "true"},
        "popen1": {"some_cmd": "true"},
        "safe_div": {"numerator": 1, "denominator": 2},
        "slug": {"text": "A b"},
        "time_str": {"timestamp": 0},
        "to_json_file": {"data": [1], "file_path": str(tmp_path / "out.json")},
        "to_pickle": {"data": [1], "file_name": "out", "path": str(tmp_path)},
    }


def test_a_none_default_is_accepted_exactly_where_the_annotation_admits_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import Base

    valid = _valid_kwargs(tmp_path)
    checked = []
    for _, module, func in _base_functions():
        imported = _imported_names(module)
        function = getattr(Base, func.name)
        function(**valid[func.name])  # the baseline call succeeds
        defaults = dict(zip(reversed(func.args.args), reversed(func.args.defaults), strict=False))
        for arg, default in defaults.items():
            if not (isinstance(default, ast.Constant) and default.value is None):
                continue
            assert arg.annotation is not None
            kwargs = {k: v for k, v in valid[func.name].items() if k != arg.arg}
            if _admits_none(arg.annotation, imported):
                function(**kwargs)
            else:
                with pytest.raises(ValueError, match=arg.arg):
                    function(**kwargs)
            checked.append(f"{func.name}.{arg.arg}")
    capsys.readouterr()
    assert len(checked) == 20, checked


# The functions the contract tester may fuzz: no exception on any JSON value their
# annotations admit, no file written, no shell. Every other Base function can raise for
# some well-typed value (size=0, a bad time format, an unknown encoding, a huge int
# divided, a key collision, a missing file), writes files, or runs a shell command.
SAFE_TO_FUZZ = {"clear_digits", "dedup_keep_order", "get_machine_name"}

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
_FUZZ_ARGS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "clear_digits": {"text": st.text()},
    "dedup_keep_order": {"items": st.lists(_json_values, max_size=12)},
    "get_machine_name": {"given_name": st.none() | st.text()},
}


@pytest.mark.parametrize("name", sorted(SAFE_TO_FUZZ))
def test_safe_to_fuzz_functions_never_raise_on_what_their_annotations_admit(name: str) -> None:
    import Base
    from pydantic import ConfigDict, TypeAdapter

    function = getattr(Base, name)
    hints = typing.get_type_hints(function)
    adapters = {p: TypeAdapter(hints[p], config=ConfigDict(strict=True)) for p in _FUZZ_ARGS[name]}
    returns = TypeAdapter(hints["return"], config=ConfigDict(strict=True))

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.fixed_dictionaries(_FUZZ_ARGS[name]))
    def run(kwargs: dict[str, Any]) -> None:
        for param, value in kwargs.items():  # the generated value is one the checker lets in
            adapters[param].validate_json(json.dumps(value))
        returns.validate_python(function(**kwargs))

    run()


# Why each other function is not fuzzed: it writes files or runs a shell, or here is a call
# whose every argument the checker lets in (strict, from JSON) and that still raises.
WRITES_OR_SHELL = {"create_folder", "to_json_file", "to_pickle", "popen", "popen1"}
RAISES_ON_WELL_TYPED: dict[str, dict[str, Any]] = {
    "chunk_list": {"items": [1], "size": 0},
    "flat_dict": {"data": {"a.b": 1, "a": {"b": 2}}},
    "from_json_file": {"file_path": "no-such-folder-h8/x.json"},
    "from_pickle": {"file_name": "x", "path": "no-such-folder-h8"},
    "inverse_time_str": {"time_str": "yesterday"},
    "md5_text": {"text": "x", "encoding": "no-such-codec"},
    "safe_div": {"numerator": 10**400, "denominator": 3},  # OverflowError: too large a float
    "slug": {"text": "x", "max_length": -1},
    "time_str": {"timestamp": 1e300},
}


def test_every_base_function_is_classified_for_fuzzing() -> None:
    names = {func.name for _, _, func in _base_functions()}
    groups = [SAFE_TO_FUZZ, WRITES_OR_SHELL, set(RAISES_ON_WELL_TYPED)]
    assert set().union(*groups) == names
    assert sum(len(group) for group in groups) == len(names)  # no function in two groups


@pytest.mark.parametrize("name", sorted(RAISES_ON_WELL_TYPED))
def test_unsafe_to_fuzz_functions_raise_on_a_well_typed_call(name: str) -> None:
    import Base
    from pydantic import ConfigDict, TypeAdapter

    function = getattr(Base, name)
    hints = typing.get_type_hints(function)
    kwargs = RAISES_ON_WELL_TYPED[name]
    for param, value in kwargs.items():
        TypeAdapter(hints[param], config=ConfigDict(strict=True)).validate_json(json.dumps(value))
    with pytest.raises((ValueError, OverflowError, OSError)):
        function(**kwargs)


def test_the_servers_checker_checks_every_base_parameter_and_requires_the_placeholders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through globalfunc.signature, from the scanned records (the function is not imported)."""
    import Base

    from globalfunc.errors import BadArguments
    from globalfunc.scan import Scanner
    from globalfunc.signature import CallSpec

    result = Scanner(BASE_DIR.parent).scan()
    assert not result.problems, result.problems
    infos = {f"{i.package}.{i.name}": i for i in result.functions.values() if i.package == "Base"}
    assert len(infos) == 17
    valid = _valid_kwargs(tmp_path)
    required = set()
    for name, info in infos.items():
        spec = CallSpec.of(info)
        unchecked = {p.name for p in info.params} - set(spec.checked)
        # only ``Any`` is left to the function: what to_pickle / to_json_file store
        assert all(p.annotation == "Any" for p in info.params if p.name in unchecked), name
        required |= {f"{name}.{param}" for param in spec.required}
        short = name.split(".", 1)[1]
        args, kwargs = spec.check([], valid[short])  # the valid call passes the checker ...
        getattr(Base, short)(*args, **kwargs)  # ... and the function takes what it passes on
        for param in spec.required:
            with pytest.raises(BadArguments, match=param):
                spec.check([], {k: v for k, v in valid[short].items() if k != param})
    capsys.readouterr()
    assert required == {
        "Base.chunk_list.items",
        "Base.clear_digits.text",
        "Base.create_folder.path",
        "Base.dedup_keep_order.items",
        "Base.flat_dict.data",
        "Base.from_json_file.file_path",
        "Base.from_pickle.file_name",
        "Base.inverse_time_str.time_str",
        "Base.md5_text.text",
        "Base.popen.some_cmd",
        "Base.popen1.some_cmd",
        "Base.safe_div.numerator",
        "Base.safe_div.denominator",
        "Base.slug.text",
        "Base.to_json_file.file_path",
        "Base.to_pickle.file_name",
    }
