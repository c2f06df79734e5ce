"""Workspace and GFBase against real git repositories: branches, commit+push, the seed's names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import git
import pytest

from gfbase import GFBase
from globalfunc.errors import FunctionNotFound, PackageNotFound, ScanError, WorkspaceError
from globalfunc.workspace import Workspace

pytestmark = pytest.mark.integration


def test_seed_flow_save_gen_list(packages_repo: Path, tmp_path: Path) -> None:
    gfbase = GFBase(project_path=packages_repo, tier1="sp_GlobalFunc")
    assert gfbase._get_current_branch() == "master"
    scan = gfbase._get_scan_files()
    meta = scan["Base.inverse_time_str.py"]["meta"]
    data = (packages_repo / "Base" / "inverse_time_str.py").read_bytes()
    assert meta["hash"] == hashlib.md5(data).hexdigest()
    assert scan["Base.inverse_time_str.py"]["data"] == data.decode()
    result = gfbase._save_a_file_rom("Base.to_pickle.py")
    assert result.key == "sp_GlobalFunc.Base_master.to_pickle" and result.added
    head = git.Repo(packages_repo).head.commit.hexsha
    assert gfbase.registry.get("Base.to_pickle").commit == head
    target = tmp_path / "test_func"
    path = gfbase._gen_a_file(func_name="to_pickle", target_folder=str(target), pack_name="Base")
    assert path.read_bytes() == (packages_repo / "Base" / "to_pickle.py").read_bytes()
    assert (target / "Base" / "__init__.py").read_text() == "from .to_pickle import to_pickle\n"
    names = gfbase._list_file_names_without_extension("Base")
    assert {"to_pickle", "from_pickle", "inverse_time_str"} <= names and "__init__" not in names
    with pytest.raises(FunctionNotFound):
        gfbase._gen_a_file(func_name="from_pickle", target_folder=str(target), pack_name="Base")


def test_branches_are_versions(packages_repo: Path) -> None:
    repo = git.Repo(packages_repo)
    gfbase = GFBase(packages_repo)
    gfbase.save("Base.slug")
    repo.git.checkout("-b", "feature/faster")
    (packages_repo / "Base" / "slug.py").write_text(
        'def slug(text: str = "") -> str:\n    return text\n'
    )
    gfbase.save("Base.slug")
    reg = gfbase.registry
    master = reg.get("Base.slug", branch="master")
    feature = reg.get("Base.slug", branch="feature/faster")
    assert master.sha256 != feature.sha256
    assert feature.key == "sp_GlobalFunc.Base_feature+faster.slug"
    assert {r.branch for r in reg.list("Base", all_branches=True)} == {"master", "feature/faster"}


def test_commit_and_push_to_bare_remote(packages_repo: Path, tmp_path: Path) -> None:
    gfbase = GFBase(packages_repo)
    (packages_repo / "Base" / "new_func.py").write_text("def new_func() -> int:\n    return 1\n")
    gfbase._generate_init_py("Base")
    assert (
        "from .new_func import new_func\n" in (packages_repo / "Base" / "__init__.py").read_text()
    )
    result = gfbase._simple_commit_git("add new_func")
    assert result.sha and result.pushed and result.message.startswith("add new_func ")
    remote = git.Repo(tmp_path / "remote.git")
    assert remote.commit("master").hexsha == result.sha
    assert ".globalfunc" not in remote.git.ls_tree("-r", "--name-only", "master")
    assert gfbase.commit("again").sha is None  # nothing changed


def test_detached_head(packages_repo: Path) -> None:
    repo = git.Repo(packages_repo)
    repo.git.checkout(repo.head.commit.hexsha)
    ws = Workspace(packages_repo)
    branch = ws.current_branch()
    assert branch == f"detached-{repo.head.commit.hexsha[:7]}"
    gfbase = GFBase(packages_repo)
    assert gfbase.save("Base.slug").key.startswith("sp_GlobalFunc.Base_detached-")
    (packages_repo / "Base" / "x.py").write_text("def x():\n    pass\n")
    with pytest.raises(WorkspaceError, match="detached HEAD"):
        ws.commit_all("on detached")


def test_not_a_git_repo(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "Base").mkdir(parents=True)
    (plain / "Base" / "f.py").write_text("def f():\n    pass\n")
    with pytest.raises(WorkspaceError, match="not inside a git repository"):
        Workspace(plain)
    gfbase = GFBase(plain)  # reading works without git
    assert "Base.f.py" in gfbase._get_scan_files()
    with pytest.raises(WorkspaceError):
        gfbase.save("Base.f")


def test_save_errors(packages_repo: Path) -> None:
    gfbase = GFBase(packages_repo)
    with pytest.raises(FunctionNotFound):
        gfbase.save("Base.does_not_exist")
    (packages_repo / "Base" / "broken.py").write_text("def broken(:\n")
    with pytest.raises(ScanError, match="syntax error"):
        gfbase.save("Base.broken")
    with pytest.raises(ScanError, match="syntax error"):
        gfbase.save_all(["Base.broken"])
    saved, result = gfbase.save_all()
    assert len(saved) == len(result.functions) and len(result.problems) == 1
    with pytest.raises(PackageNotFound):
        gfbase.generate_init_py("Nope")


def test_reload_package_picks_up_edits(packages_repo: Path) -> None:
    gfbase = GFBase(packages_repo)
    (packages_repo / "Base" / "answer.py").write_text("def answer() -> int:\n    return 1\n")
    gfbase.generate_init_py("Base")
    assert gfbase._reload_package("Base").answer() == 1
    (packages_repo / "Base" / "answer.py").write_text("def answer() -> int:\n    return 2\n")
    assert gfbase._reload_package("Base").answer() == 2


def test_init_new_repository(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "new")
    assert ws.current_branch() in {"master", "main"}
    assert (tmp_path / "new" / "Sample" / "hello.py").exists()
    assert not ws.is_dirty()
    with pytest.raises(WorkspaceError, match="already"):
        Workspace.init(tmp_path / "new")
