"""The git side of a packages root: branch, commit and push, ``__init__.py``, reload.

A packages root is a folder of packages inside a git work tree (the root may be the
repository itself or a folder in it). Git branches are function versions: the current
branch names the tier2 of every saved record. This module wraps GitPython, imported
only when a workspace is opened (so importing the core or ``gfgo`` does not load it); it
never talks to storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType

from globalfunc.errors import PackageNotFound, WorkspaceError
from globalfunc.files import confined, reload_from, write_atomic, write_init_py
from globalfunc.naming import check_branch, parse_package

__all__ = ["CommitResult", "Workspace", "reload_from"]

DETACHED_PREFIX = "detached-"

SAMPLE_FUNCTION = '''"""Greet someone: the sample function of a new GlobalFunc packages repository."""


def hello(name: str = "world") -> str:
    """Return a greeting for ``name``."""
    return f"hello, {name}"
'''


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What ``commit_all`` did: the new commit (None if nothing changed) and whether it pushed."""

    sha: str | None
    message: str
    pushed: bool = False
    remote: str | None = None


class Workspace:
    """A packages root inside a git work tree."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        import git

        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise WorkspaceError(f"packages root {str(self.root)!r} is not a folder")
        try:
            self.repo = git.Repo(self.root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise WorkspaceError(
                f"{str(self.root)!r} is not inside a git repository; run 'gf init' or 'git init' there"
            ) from None

    @classmethod
    def init(cls, root: str | os.PathLike[str], *, sample: bool = True) -> Workspace:
        """Make ``root`` a new packages repository: git init, a sample package, a first commit."""
        import git

        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        if (path / ".git").exists():
            raise WorkspaceError(f"{str(path)!r} is already a git repository")
        repo = git.Repo.init(path)
        write_atomic(path / ".gitignore", ".globalfunc/\n__pycache__/\n*.pyc\n*.pkl\n")
        if sample:
            write_atomic(path / "Sample" / "hello.py", SAMPLE_FUNCTION)
            write_init_py(path / "Sample")
        repo.git.add(A=True)
        with repo.config_writer() as cfg:
            if not repo.git.config("--get", "user.email", with_exceptions=False):
                cfg.set_value("user", "email", "globalfunc@localhost")
                cfg.set_value("user", "name", "GlobalFunc")
        repo.index.commit("gf init: new packages repository")
        return cls(path)

    # -- branches and commits ------------------------------------------------------------
    def current_branch(self) -> str:
        """The checked-out branch; a detached HEAD is ``detached-<short sha>``."""
        head = self.repo.head
        if head.is_detached:
            return f"{DETACHED_PREFIX}{head.commit.hexsha[:7]}"
        return check_branch(head.ref.name)

    def head_commit(self) -> str | None:
        """The sha of HEAD, or None in a repository with no commits yet."""
        try:
            return self.repo.head.commit.hexsha
        except ValueError:
            return None

    def is_dirty(self) -> bool:
        return self.repo.is_dirty(untracked_files=True, path=str(self.root))

    def dirty_paths(self, paths: list[Path] | None = None) -> set[Path]:
        """Which of ``paths`` (default: everything under the root) differ from HEAD:
        modified, staged, untracked or new. One ``git status`` call for all of them."""
        import git

        work_tree = Path(self.repo.working_tree_dir or self.root).resolve()
        targets = [str(p) for p in paths] if paths is not None else [str(self.root)]
        if not targets:
            return set()
        try:
            out = self.repo.git.status("--porcelain", "-z", "--untracked-files=all", "--", *targets)
        except git.GitCommandError as exc:
            raise WorkspaceError(f"git status failed: {exc.stderr.strip() or exc}") from exc
        dirty: set[Path] = set()
        entries = out.split("\0")
        i = 0
        while i < len(entries):
            entry = entries[i]
            i += 1
            if len(entry) < 4:
                continue
            if entry[0] in "RC":  # a rename or copy: the source path follows
                i += 1
            dirty.add((work_tree / entry[3:]).resolve())
        return dirty

    def commit_all(self, message: str | None = None, *, push: bool = True) -> CommitResult:
        """Stage everything under the root, commit with a timestamped message, push if a remote exists."""
        import git

        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        full = f"{message or 'gf commit'} {stamp}"
        try:
            self.repo.git.add("-A", "--", str(self.root))
            if self.head_commit() is not None and not self.repo.index.diff("HEAD"):
                return CommitResult(None, full)
            sha = self.repo.index.commit(full).hexsha
        except git.GitCommandError as exc:
            raise WorkspaceError(f"git commit failed: {exc.stderr.strip() or exc}") from exc
        if not push or not self.repo.remotes:
            return CommitResult(sha, full)
        if self.repo.head.is_detached:
            raise WorkspaceError(
                f"committed {sha[:7]} on a detached HEAD; check out a branch before pushing"
            )
        remote = self.repo.remotes[0]
        branch = self.repo.head.ref.name
        try:
            infos = remote.push(refspec=f"{branch}:{branch}")
        except git.GitCommandError as exc:
            raise WorkspaceError(
                f"committed {sha[:7]} but push to {remote.name!r} failed: {exc.stderr.strip() or exc}"
            ) from exc
        for info in infos:
            if info.flags & info.ERROR:
                raise WorkspaceError(
                    f"committed {sha[:7]} but push to {remote.name!r} was refused: {info.summary.strip()}"
                )
        return CommitResult(sha, full, pushed=True, remote=remote.name)

    # -- packages ------------------------------------------------------------------------
    def package_dir(self, package: str) -> Path:
        parse_package(package)
        path = confined(self.root, *package.split("."))
        if not path.is_dir():
            raise PackageNotFound(
                f"no package {package!r} under {str(self.root)!r}; create the folder {package.replace('.', '/')}/"
            )
        return path

    def packages(self) -> list[str]:
        """Top-level package folders (not starting with ``.`` or ``_``)."""
        return sorted(
            e.name
            for e in os.scandir(self.root)
            if e.is_dir() and not e.name.startswith((".", "_")) and e.name.isidentifier()
        )

    def generate_init_py(self, package: str) -> Path:
        """Rewrite the package's ``__init__.py``: ``from .name import name`` per file, sorted."""
        return write_init_py(self.package_dir(package))

    def list_functions(self, package: str) -> list[str]:
        """Function names of a package: its ``.py`` files without extension, sorted."""
        folder = self.package_dir(package)
        return sorted(
            e.name[:-3]
            for e in os.scandir(folder)
            if e.is_file() and e.name.endswith(".py") and not e.name.startswith((".", "_"))
        )

    def reload_package(self, package: str) -> ModuleType:
        """Import the package fresh from the root (dropping any cached copy and its modules)."""
        parse_package(package)
        self.package_dir(package)
        return reload_from(self.root, package)
