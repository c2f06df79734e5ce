"""``gf show`` / ``gf history`` say which versions were saved dirty; ``gf call``'s not-found
message speaks of the CLI. A real git repository in a temp dir, ``gf`` in-process."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from globalfunc.cli import main
from globalfunc.cli.registry import DIRTY_NOTE

pytestmark = pytest.mark.integration


def gf(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def history_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("history ("))
    return lines[start + 1 :]


def test_show_and_history_mark_versions_saved_with_uncommitted_changes(
    packages_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gf(capsys, packages_repo, "save", "Base.slug")[0] == 0  # committed: clean
    code, out, _ = gf(capsys, packages_repo, "show", "Base.slug")
    assert code == 0 and "dirty" not in out

    slug = packages_repo / "Base" / "slug.py"
    slug.write_text(slug.read_text() + "\n# an edit not committed yet\n")
    assert gf(capsys, packages_repo, "save", "Base.slug")[0] == 0
    code, out, _ = gf(capsys, packages_repo, "show", "Base.slug")
    assert code == 0
    sha_line = next(line for line in out.splitlines() if line.lstrip().startswith("sha256 "))
    assert sha_line.endswith(DIRTY_NOTE)
    newest, oldest = history_lines(out)
    assert DIRTY_NOTE in newest and "dirty" not in oldest

    code, out, _ = gf(capsys, packages_repo, "history", "Base.slug")
    assert code == 0 and "2 versions" in out
    newest, oldest = history_lines(out)
    assert DIRTY_NOTE in newest and "dirty" not in oldest

    # committed, then saved again (unchanged code: a no-op); a new edit committed first is clean
    repo = git.Repo(packages_repo)
    slug.write_text(slug.read_text() + "# a committed edit\n")
    repo.git.add(A=True)
    repo.index.commit("edit slug")
    repo.close()
    assert gf(capsys, packages_repo, "save", "Base.slug")[0] == 0
    code, out, _ = gf(capsys, packages_repo, "history", "Base.slug")
    lines = history_lines(out)
    assert code == 0 and len(lines) == 3
    assert "dirty" not in lines[0] and DIRTY_NOTE in lines[1] and "dirty" not in lines[2]


def test_an_untracked_file_is_saved_dirty(
    packages_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (packages_repo / "Base" / "fresh.py").write_text("def fresh():\n    return 1\n")
    assert gf(capsys, packages_repo, "save", "Base.fresh")[0] == 0
    code, out, _ = gf(capsys, packages_repo, "show", "Base.fresh")
    assert code == 0 and DIRTY_NOTE in out


def test_gf_call_of_an_unregistered_name_points_at_gf_ls(
    packages_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = gf(capsys, packages_repo, "call", "NoSuch.func")
    assert code == 1
    assert err.startswith("gf: error: no registered function 'NoSuch.func' on branch 'master'")
    assert "gf ls" in err and "GET /functions" not in err
    assert len(err.strip().splitlines()) == 1
