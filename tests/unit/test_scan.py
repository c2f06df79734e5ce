"""Scanning: what a file yields, every kind of bad file, and incremental rescans."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globalfunc.errors import ScanError
from globalfunc.scan import Scanner
from tests.factories import write_function


def test_scan_reads_metadata_without_importing(tmp_path: Path) -> None:
    body = (
        '"""Module."""\n'
        "import os\n"
        "from collections import OrderedDict\n\n\n"
        "def convert(a: int, b: str = 'x', *args: int, c: float = 1.5, d, **kw: str) -> dict:\n"
        '    """Convert things.\n\n    More words."""\n'
        "    import json\n"
        "    raise SystemExit('scanning must never run this')\n"
    )
    path = write_function(tmp_path, "Base", "convert", body)
    result = Scanner(tmp_path).scan()
    assert not result.problems
    info = result.functions["Base.convert.py"]
    data = path.read_bytes()
    assert info.md5 == hashlib.md5(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert info.line_count == body.count("\n")
    assert (
        info.signature == "(a: int, b: str = 'x', *args: int, c: float = 1.5, d, **kw: str) -> dict"
    )
    assert [p.kind for p in info.params] == [
        "positional_or_keyword",
        "positional_or_keyword",
        "var_positional",
        "keyword_only",
        "keyword_only",
        "var_keyword",
    ]
    assert info.params[0].required and not info.params[1].required
    assert info.docstring == "Convert things.\n\nMore words."
    assert info.imports == ("collections", "json", "os")
    assert info.returns == "dict"
    assert info.lineno == 6
    assert info.seed_dict()["meta"]["name"] == "convert.py"


def test_positional_only_and_async(tmp_path: Path) -> None:
    write_function(tmp_path, "Base", "f", "async def f(a, /, b=2, *, c):\n    return a\n")
    info = Scanner(tmp_path).scan().functions["Base.f.py"]
    assert info.signature == "(a, /, b=2, *, c)"
    assert info.is_async


def test_walk_rules_match_the_seed(tmp_path: Path) -> None:
    write_function(tmp_path, "Base", "good")
    write_function(tmp_path, "pkg.sub", "deep")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "secret.py").write_text("def secret():\n    pass\n")
    write_function(tmp_path, "_private", "secret")
    write_function(tmp_path, "Base", "_helper")
    (tmp_path / "Base" / "__init__.py").write_text("")
    (tmp_path / "Base" / "data.pkl").write_bytes(b"\x80")
    (tmp_path / "Base" / "notes.md").write_text("# notes")
    (tmp_path / "toplevel.py").write_text("def toplevel():\n    pass\n")
    keys = set(Scanner(tmp_path).scan().functions)
    assert keys == {"Base.good.py", "pkg.sub.deep.py"}


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("def broken(:\n    pass\n", 1, "syntax error"),
        (
            "x = 1\n\n\ndef other():\n    pass\n",
            4,
            "defines 'other' but the file is named 'broken'",
        ),
        ("x = 1\n", None, "defines no function"),
        ("def broken():\n    pass\n\x00", None, "null bytes"),
    ],
)
def test_bad_files_become_problems(
    tmp_path: Path, body: str, line: int | None, fragment: str
) -> None:
    write_function(tmp_path, "Base", "broken", body)
    write_function(tmp_path, "Base", "fine")
    result = Scanner(tmp_path).scan()
    assert set(result.functions) == {"Base.fine.py"}
    [problem] = result.problems
    assert problem.path == "Base/broken.py"
    assert problem.line == line
    assert fragment in problem.message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "Base" / "latin.py"
    path.parent.mkdir()
    path.write_bytes(b"def latin():\n    return '\xe9'\n")
    [problem] = Scanner(tmp_path).scan().problems
    assert "not UTF-8" in problem.message and problem.line == 2


def test_oversized_file(tmp_path: Path) -> None:
    write_function(tmp_path, "Base", "big", "def big():\n    pass\n" + "#" * 2000 + "\n")
    [problem] = Scanner(tmp_path, max_file_size=1000).scan().problems
    assert "over the 1000-byte limit" in problem.message


def test_invalid_package_folder_name(tmp_path: Path) -> None:
    write_function(tmp_path, "my-pkg", "f")
    [problem] = Scanner(tmp_path).scan().problems
    assert "package folder" in problem.message


def test_scan_file_raises_scan_error(tmp_path: Path) -> None:
    path = write_function(tmp_path, "Base", "broken", "def broken(:\n")
    with pytest.raises(ScanError) as info:
        Scanner(tmp_path).scan_file(path)
    assert "Base/broken.py:1" in info.value.message
    with pytest.raises(ScanError):
        Scanner(tmp_path).scan_file(tmp_path.parent / "elsewhere.py")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ScanError):
        Scanner(tmp_path / "nope").scan()


def test_rescan_reuses_unchanged_files(tmp_path: Path) -> None:
    for i in range(5):
        write_function(tmp_path, "Base", f"f{i}")
    scanner = Scanner(tmp_path)
    first = scanner.scan()
    assert (first.parsed, first.reused) == (5, 0)
    again = scanner.scan()
    assert (again.parsed, again.reused) == (0, 5)
    assert again.functions == first.functions
    # change one file's content (and so its size): only it is parsed again
    path = write_function(tmp_path, "Base", "f2", "def f2():\n    return 'changed'\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = scanner.scan()
    assert (third.parsed, third.reused) == (1, 4)
    assert "changed" in third.functions["Base.f2.py"].code
    # a deleted file disappears
    path.unlink()
    assert "Base.f2.py" not in scanner.scan().functions


def test_cache_file_survives_processes_and_reuses_content(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for i in range(4):
        write_function(root, "Base", f"f{i}")
    cache = tmp_path / "cache.json"
    first = Scanner(root, cache_file=cache).scan()
    assert first.parsed == 4 and first.content_hits == 0 and cache.exists()
    # a new scanner (a new process) reuses everything by stat
    second = Scanner(root, cache_file=cache).scan()
    assert (second.parsed, second.reused) == (0, 4)
    assert second.functions == first.functions
    # touching every file (as a checkout does) re-hashes but does not re-parse: same results
    for path in (root / "Base").glob("*.py"):
        os.utime(path, ns=(0, path.stat().st_mtime_ns + 5_000_000_000))
    third = Scanner(root, cache_file=cache).scan()
    assert third.parsed == 4 and third.content_hits == 4
    assert {k: v.sha256 for k, v in third.functions.items()} == {
        k: v.sha256 for k, v in first.functions.items()
    }
    assert all(third.functions[k].mtime_ns != first.functions[k].mtime_ns for k in first.functions)
    # a corrupt cache is ignored, not fatal
    cache.write_text("{not json")
    assert len(Scanner(root, cache_file=cache).scan().functions) == 4


# -- odd files: line endings, byte-order marks, symlinks -------------------------------------

_MULTILINE = (
    "def f(a,\n"
    "      b={'x': 1,\n"
    "         'y': 2},\n"
    "      *, c: 'dict[str, int]' = {\n"
    "          'z': 3}) -> int:\n"
    '    """Doc\n    string."""\n'
    "    return a\n"
)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_give_the_same_signature(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "Base" / "f.py"
    path.parent.mkdir(parents=True)
    data = _MULTILINE.replace("\n", newline).encode()
    path.write_bytes(data)
    result = Scanner(tmp_path).scan()
    assert result.problems == []
    info = result.functions["Base.f.py"]
    assert info.signature == (
        "(a, b={'x': 1,\n         'y': 2}, *, c: 'dict[str, int]' = {\n          'z': 3}) -> int"
    )
    assert "\r" not in info.signature and all("\r" not in (p.default or "") for p in info.params)
    assert info.docstring == "Doc\nstring."
    assert info.line_count == 8
    assert info.code.encode() == data  # stored as the file is: its hash is the file's
    assert info.sha256 == hashlib.sha256(data).hexdigest()


def test_byte_order_mark_is_read_as_python_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "Base" / "f.py"
    path.parent.mkdir(parents=True)
    data = b"\xef\xbb\xbf" + "def f(x='é', y=2):\n    return x\n".encode()
    path.write_bytes(data)
    result = Scanner(tmp_path).scan()
    assert result.problems == []
    info = result.functions["Base.f.py"]
    assert info.signature == "(x='é', y=2)"
    assert info.code.encode() == data
    namespace: dict[str, object] = {}
    exec(compile(data, str(path), "exec"), namespace)  # what Python itself makes of the file
    assert namespace["f"].__defaults__ == ("é", 2)  # type: ignore[attr-defined]


def test_symlinked_file_outside_the_root_is_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_function(root, "Base", "fine")
    outside = tmp_path / "elsewhere" / "leak.py"
    outside.parent.mkdir()
    outside.write_text("def leak():\n    return open('/etc/passwd').read()\n")
    (root / "Base" / "leak.py").symlink_to(outside)
    result = Scanner(root).scan()
    assert set(result.functions) == {"Base.fine.py"}
    [problem] = result.problems
    assert problem.path == "Base/leak.py" and "outside the packages root" in problem.message
    with pytest.raises(ScanError, match="not under the packages root"):
        Scanner(root).scan_file(root / "Base" / "leak.py")


def test_symlinked_file_inside_the_root_is_scanned(tmp_path: Path) -> None:
    write_function(tmp_path, "Base", "real")
    (tmp_path / "Other").mkdir()
    (tmp_path / "Other" / "real.py").symlink_to(tmp_path / "Base" / "real.py")
    result = Scanner(tmp_path).scan()
    assert set(result.functions) == {"Base.real.py", "Other.real.py"}
    assert result.problems == []


def test_symlinked_folder_is_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_function(root, "Base", "fine")
    write_function(tmp_path / "elsewhere", "Pkg", "g")
    (root / "Linked").symlink_to(tmp_path / "elsewhere" / "Pkg", target_is_directory=True)
    result = Scanner(root).scan()
    assert set(result.functions) == {"Base.fine.py"}
    [problem] = result.problems
    assert problem.path == "Linked" and "symlink to a folder" in problem.message


_default = st.sampled_from(["1", "'a\\\\b'", "{'k': [1,\n 2]}", "(\n3,\n)", "None", "lambda q: q"])


@settings(max_examples=60, deadline=None)
@given(
    defaults=st.lists(_default, min_size=1, max_size=4),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    noise=st.sampled_from(["", "# é ü\n", "x = '''\n\n'''\n", "\f\n"]),
)
def test_every_odd_file_is_scanned_correctly_or_a_problem(
    tmp_path_factory: pytest.TempPathFactory,
    defaults: list[str],
    newline: str,
    bom: bool,
    noise: str,
) -> None:
    import ast

    params = ", ".join(f"p{i}={d}" for i, d in enumerate(defaults))
    text = f"{noise}def f(\n{params}):\n    return 1\n"
    data = (b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", newline).encode()
    root = tmp_path_factory.mktemp("odd")
    (root / "Base").mkdir()
    (root / "Base" / "f.py").write_bytes(data)
    result = Scanner(root).scan()  # never raises
    expected = ast.parse(data).body[-1]
    assert isinstance(expected, ast.FunctionDef)
    info = result.functions["Base.f.py"]
    got = [ast.dump(ast.parse(p.default or "", mode="eval").body) for p in info.params]
    assert got == [ast.dump(d) for d in expected.args.defaults]
    assert "\r" not in info.signature
