"""The ``gf`` command line: every command on a real repository, and how errors look."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from globalfunc.cli import main

pytestmark = pytest.mark.integration


def gf(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_full_cycle(
    packages_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(packages_repo)
    code, out, _ = gf(capsys, "--root", root, "scan")
    assert code == 0 and "Base.inverse_time_str(" in out and "0 problems" in out
    code, out, _ = gf(capsys, "--root", root, "save", "--all")
    assert code == 0 and "17 saved, 0 unchanged on branch 'master'" in out
    code, out, _ = gf(capsys, "--root", root, "save", "Base.slug")
    assert code == 0 and "0 saved, 1 unchanged" in out
    code, out, _ = gf(capsys, "--root", root, "ls", "Base")
    assert code == 0 and len(out.splitlines()) == 17
    code, out, _ = gf(capsys, "--root", root, "show", "Base.to_pickle")
    assert code == 0 and "sp_GlobalFunc.Base_master.to_pickle" in out and "def to_pickle(" in out
    assert "history (1 versions" in out
    code, out, _ = gf(capsys, "--root", root, "search", "pickle")
    assert code == 0 and "Base.to_pickle" in out and "Base.from_pickle" in out
    code, out, _ = gf(capsys, "--root", root, "history", "Base.to_pickle")
    assert code == 0 and "1 versions" in out
    code, out, _ = gf(capsys, "--root", root, "rm", "Base.md5_text")
    assert code == 0 and "deleted sp_GlobalFunc.Base_master.md5_text" in out
    code, out, err = gf(capsys, "--root", root, "rm", "Base.md5_text")
    assert code == 1 and "no live function Base.md5_text" in err
    code, out, _ = gf(capsys, "--root", root, "history", "Base.md5_text")
    assert code == 0 and "2 versions" in out and "deleted" in out
    code, out, _ = gf(
        capsys, "--root", root, "gen", "Base.to_pickle", "--to", str(tmp_path / "out")
    )
    assert code == 0 and (tmp_path / "out" / "Base" / "to_pickle.py").exists()
    code, out, _ = gf(capsys, "--root", root, "call", "Base.slug", "text=Hello World")
    assert code == 0 and out.strip() == '"hello-world"'
    code, out, _ = gf(
        capsys, "--root", root, "call", "Base.chunk_list", "--json", '{"items": [1,2,3], "size": 2}'
    )
    assert code == 0 and out.strip() == "[[1,2],[3]]"
    (packages_repo / "Base" / "extra.py").write_text("def extra():\n    pass\n")
    code, out, _ = gf(capsys, "--root", root, "commit", "-m", "add extra")
    assert code == 0 and "committed" in out and "pushed to origin" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("show", "Base.nope"), "no function Base.nope"),
        (("show", "Base.__init__"), "starts with '_'"),
        (("gen", "Base.nope", "--to", "x"), "no function Base.nope"),
        (("save",), "or pass --all"),
        (("save", "Base.nope"), "no function file"),
        (("call", "Base.slug", "novalue"), "name=value"),
        (("call", "Base.slug", "--json", "[1]"), "JSON object"),
        (("show", "Base.slug", "--hash", "zz"), "hex digits"),
    ],
)
def test_user_errors_are_one_line_exit_1(
    packages_repo: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    code, _out, err = gf(capsys, "--root", str(packages_repo), *args)
    assert code == 1
    assert err.startswith("gf: error: ") and fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_root_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = gf(capsys, "--root", str(tmp_path / "nope"), "ls")
    assert code == 1 and "is not a folder" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bogus"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["gen", "Base.f"])  # --to is required
    assert info.value.code == 2
    assert main([]) == 2


def test_bad_setting_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], packages_repo: Path
) -> None:
    monkeypatch.setenv("GF_MAX_FILE_SIZE", "-5")
    code, _, err = gf(capsys, "--root", str(packages_repo), "ls")
    assert code == 1 and "GF_MAX_FILE_SIZE" in err


def test_debug_shows_traceback(packages_repo: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "globalfunc.cli",
            "--root",
            str(packages_repo),
            "--debug",
            "show",
            "Base.nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "FunctionNotFound" in proc.stderr


def test_init_then_save(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mine"
    code, out, _ = gf(capsys, "init", str(target))
    assert code == 0 and "initialized" in out
    code, out, _ = gf(capsys, "--root", str(target), "save", "--all")
    assert code == 0 and "sp_GlobalFunc.Sample_" in out and ".hello" in out
    code, out, err = gf(capsys, "init", str(target))
    assert code == 1 and "already a git repository" in err


def test_serve_on_a_busy_port_is_one_clear_line(
    packages_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = gf(capsys, "--root", str(packages_repo), "serve", "--port", str(port))
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_user_errors_are_one_line(
    packages_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(packages_repo)
    assert gf(capsys, "--root", root, "save", "--all")[0] == 0
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases: list[tuple[list[str], str]] = [
        (["call", "Base.slug", "txt=x"], "arguments do not fit Base.slug(text"),
        (["call", "Base.slug", "text=x", "max_length=-1"], "Base.slug raised ValueError"),
        (["call", "Base.safe_div", "numerator=1"], "missing a required argument: 'denominator'"),
        (["call", "Base.nope"], "Base.nope"),
        (["call", "Base.slug", "text"], "must look like name=value"),
        (["call", "Base.slug", "--json", "[1]"], "--json must be a JSON object"),
        (["gen", "Base.slug", "--to", str(a_file)], "is a file; give the folder"),
        (["gen", "Base.nope", "--to", str(tmp_path)], "no function Base.nope"),
        (["init", str(a_file)], "exists and is not a folder"),
        (["show", "Base.__init__"], "__init__"),
        (["save"], "pass --all"),
        (["--root", str(a_file), "ls"], "is not a folder"),
        (["workers"], "set GF_WORKER_REDIS_URL"),
        (["workers", "--redis", "redis://127.0.0.1:1/0?password=sekrit"], "password=***"),
    ]
    for args, expected in cases:
        code, _, err = gf(capsys, "--root", root, *args)
        assert code == 1, (args, err)
        assert err.startswith("gf: error: ") and err.count("\n") == 1, (args, err)
        assert expected in err and "sekrit" not in err, (args, err)


def test_a_local_call_error_has_the_remote_shape(
    packages_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from globalfunc.cli import build_parser
    from globalfunc.cli.call import call_local
    from globalfunc.cli.context import Context
    from globalfunc.errors import BadArguments, ExecutionError
    from globalfunc.settings import Settings

    root = str(packages_repo)
    assert gf(capsys, "--root", root, "save", "--all")[0] == 0
    args = build_parser().parse_args(["--root", root, "call", "Base.slug"])
    ctx = Context(args, Settings())
    try:
        with pytest.raises(BadArguments) as bad:
            call_local(ctx, "Base.slug", {"txt": "x"})
        assert isinstance(bad.value, TypeError)
        with pytest.raises(ExecutionError) as failed:
            call_local(ctx, "Base.slug", {"text": "x", "max_length": -1})
        assert failed.value.details["exc_type"] == "ValueError"
        assert isinstance(failed.value.__cause__, ValueError)
    finally:
        ctx.close()


def test_a_port_out_of_range_is_a_usage_error(
    packages_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--root", str(packages_repo), "serve", "--port", "99999"])
    assert info.value.code == 2 and "'99999' is not a port" in capsys.readouterr().err
