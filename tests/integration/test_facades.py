"""GFBase and GFGo against real git repositories: the branch rule, dirty saves, the seed's
reload flow, file modes, and the README's Python block run as written in a fresh clone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from gfbase import GFBase
from gfgo import GFGo
from globalfunc.files import forget_modules
from globalfunc.workspace import Workspace

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_live_branch_unless_one_is_given(packages_repo: Path, tmp_path: Path) -> None:
    repo = git.Repo(packages_repo)
    gfbase = GFBase(packages_repo)  # constructed on master
    gfbase.save("Base.slug")
    repo.git.checkout("-b", "feature")
    (packages_repo / "Base" / "slug.py").write_text("def slug(text: str) -> str:\n    return 'f'\n")
    assert gfbase.save("Base.slug").key == "sp_GlobalFunc.Base_feature.slug"
    assert gfbase.registry.branch == "feature"
    out = gfbase.gen("slug", tmp_path / "live", "Base")  # the live branch: feature
    assert "return 'f'" in out.read_text()
    old = gfbase._gen_a_file(func_name="slug", target_folder=tmp_path / "m", pack_name="Base",
                             branch_name="master")  # fmt: skip
    assert "return 'f'" not in old.read_text()
    assert gfbase.save("Base.slug", branch="master").key == "sp_GlobalFunc.Base_master.slug"
    repo.git.checkout("master", "-f")
    assert gfbase.registry.branch == "master"


def test_a_save_records_that_the_file_was_dirty(packages_repo: Path) -> None:
    gfbase = GFBase(packages_repo)
    head = git.Repo(packages_repo).head.commit.hexsha
    clean = gfbase.save("Base.slug")
    record = gfbase.registry.get("Base.slug")
    assert record.sha256 == clean.sha256 and record.commit == head and not record.dirty
    (packages_repo / "Base" / "slug.py").write_text(
        "def slug(text: str) -> str:\n    return text\n"
    )
    gfbase.save("Base.slug")
    record = gfbase.registry.get("Base.slug")
    assert record.commit == head and record.dirty  # HEAD does not hold this code
    assert [h.dirty for h in gfbase.registry.history("Base.slug")] == [True, False]
    (packages_repo / "Base" / "fresh.py").write_text("def fresh() -> int:\n    return 1\n")
    saved, _ = gfbase.save_all()  # untracked and modified files are dirty, the rest not
    flags = {r.name: r.dirty for r in gfbase.registry.list("Base")}
    assert flags["fresh"] and flags["slug"] and not flags["to_pickle"]
    assert any(s.added for s in saved)


def test_seed_reload_flow_runs_the_new_code(packages_repo: Path) -> None:
    """The seed: import GlobalFunc as funcs; call; edit; gfgo._reload_package("GlobalFunc")."""
    root = packages_repo  # a folder named GlobalFunc, its parent importable
    (root / "__init__.py").write_text("from . import Base\n")
    gfbase = GFBase(root)
    answer = root / "Base" / "answer.py"
    answer.write_text("def answer() -> int:\n    return 1\n")
    gfbase.generate_init_py("Base")
    sys.path.insert(0, str(root.parent))
    forget_modules("Base")  # a directory root imports Base by its top-level name: ours here
    try:
        import GlobalFunc as funcs

        gfgo = GFGo()
        assert gfgo._exe_func_kwargs(global_func=funcs, pack_func="Base.answer", kwargs={}) == 1
        assert gfgo._exe_func_kwargs(global_func=str(root), pack_func="Base.answer") == 1
        # same size, same second: the bytecode cache's own check cannot tell them apart
        answer.write_text("def answer() -> int:\n    return 2\n")
        gfgo._reload_package("GlobalFunc")
        assert gfgo._exe_func_kwargs(global_func=funcs, pack_func="Base.answer", kwargs={}) == 2
        assert gfgo._exe_func_kwargs(global_func=str(root), pack_func="Base.answer") == 2
        answer.write_text("def answer() -> int:\n    return 3\n")
        GFGo._reload_package("Base", global_func=str(root))  # one package of one root
        assert gfgo._exe_func_kwargs(global_func=str(root), pack_func="Base.answer") == 3
    finally:
        sys.path.remove(str(root.parent))
        forget_modules("GlobalFunc")
        forget_modules("Base")


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_written_files_follow_the_umask(packages_repo: Path, tmp_path: Path, umask: None) -> None:
    gfbase = GFBase(packages_repo)
    gfbase.save("Base.slug")
    out = gfbase.gen("slug", tmp_path / "out", "Base")
    assert out.stat().st_mode & 0o777 == 0o640
    assert (out.parent / "__init__.py").stat().st_mode & 0o777 == 0o640
    ws = Workspace.init(tmp_path / "new")
    assert (tmp_path / "new" / "Sample" / "hello.py").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "new" / ".gitignore").stat().st_mode & 0o777 == 0o640
    init = ws.generate_init_py("Sample")
    assert init.stat().st_mode & 0o777 == 0o640
    os.umask(0o002)
    again = gfbase.gen("to_pickle", tmp_path / "out2", "Base") if _saved(gfbase) else None
    assert again is not None and again.stat().st_mode & 0o777 == 0o664


def _saved(gfbase: GFBase) -> bool:
    gfbase.save("Base.to_pickle")
    return True


def _readme_python_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    heading = text.index("## From Python")
    match = re.search(r"```python\n(.*?)```", text[heading:], re.DOTALL)
    assert match, "README has no Python block under 'From Python'"
    return match.group(1)


def test_readme_python_block_runs_as_written_in_a_fresh_clone(tmp_path: Path) -> None:
    """Clone the repository (through a bare copy, so the block's commit can push) and run
    the README's notebook block unchanged, on the clone's own branch."""
    bare, work = tmp_path / "origin.git", tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    branch = git.Repo(work).active_branch.name
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GF_")},
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(work),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    block = _readme_python_block()
    script = block + "\nprint('BRANCH', gfbase._get_current_branch())\n"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"BRANCH {branch}" in done.stdout
    assert (Path("/tmp/out") / "Base" / "from_pickle.py").read_bytes() == (
        work / "packages" / "Base" / "from_pickle.py"
    ).read_bytes()
