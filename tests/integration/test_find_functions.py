"""Finding what was written before, end to end (issue 14): duplicates across packages and
branches (``gf dupes``), the save-time warning (``gf save`` and ``GFBase``), descriptions
(``gf describe`` then ``gf search`` and ``gf history``), and ``GET /search`` with
``package``/``branch`` on a live ``gf serve``. Every ``gf`` is its own process, on a real
git repository with a real SQLite registry.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import orjson
import pytest
import requests

from gfbase import GFBase
from globalfunc.fingerprint import DuplicateFunction
from tests.integration.serve_support import ServerProcess

pytestmark = pytest.mark.integration

# Base.slug's logic, with other local names, formatting, comments and docstring
SLUG_COPY = '''"""Slugs for titles."""

import re
import unicodedata


def make_slug(title: str = None, joiner: str = "-", limit: int = 0) -> str:
    """Make a URL slug out of a title."""
    # same checks, other names
    if title is None:
        raise ValueError("text is None; expected a str such as 'Hello World'")
    if not isinstance(title, str):
        raise TypeError(f"text must be a str, got {type(title).__name__}: {title!r}")
    if not isinstance(joiner, str):
        raise TypeError(f"sep must be a str, got {type(joiner).__name__}: {joiner!r}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"max_length must be an int, got {type(limit).__name__}: {limit!r}")
    if limit < 0:
        raise ValueError(f"max_length must be 0 (no limit) or more, got {limit!r}")
    plain = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    parts = re.findall(r"[a-z0-9]+", plain.lower())
    out = joiner.join(parts)
    if limit:
        out = out[:limit]
        if joiner:
            while out.endswith(joiner):
                out = out[: -len(joiner)]
    return out
'''


def gf(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = ServerProcess.gf(root, *args).run(timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def _text(proc: subprocess.CompletedProcess[bytes]) -> tuple[str, str]:
    return proc.stdout.decode(), proc.stderr.decode()


def _commit(root: Path, message: str) -> None:
    repo = git.Repo(root)
    repo.git.add(A=True)
    repo.index.commit(message)
    repo.close()


def _checkout(root: Path, branch: str, *, new: bool = False) -> None:
    repo = git.Repo(root)
    repo.git.checkout(*(["-b", branch] if new else [branch]))
    repo.close()


@pytest.fixture
def two_branches(packages_repo: Path) -> Iterator[Path]:
    """Base saved on master; ``Text.make_slug`` (Base.slug's logic) added on ``feature``
    and saved there; the repo back on master."""
    gf(packages_repo, "save", "--all")
    _checkout(packages_repo, "feature", new=True)
    (packages_repo / "Text").mkdir()
    (packages_repo / "Text" / "make_slug.py").write_text(SLUG_COPY)
    _commit(packages_repo, "Text.make_slug")
    yield packages_repo


def test_a_save_that_duplicates_another_function_warns_and_dupes_lists_both(
    two_branches: Path,
) -> None:
    root = two_branches
    out, err = _text(gf(root, "save", "Text.make_slug"))
    assert "saved sp_GlobalFunc.Text_feature.make_slug" in out
    assert (
        "gf: warning: sp_GlobalFunc.Text_feature.make_slug has the same logic as "
        "sp_GlobalFunc.Base_master.slug" in err
    )
    assert "reuse it? (gf dupes)" in err
    # the same code again: unchanged, so no second warning
    out, err = _text(gf(root, "save", "Text.make_slug"))
    assert "0 saved, 1 unchanged" in out and "warning" not in err

    groups = orjson.loads(gf(root, "dupes", "--json").stdout)
    assert len(groups) == 1
    members = {(m["name"], m["branch"]) for m in groups[0]["functions"]}
    assert members == {("Base.slug", "master"), ("Text.make_slug", "feature")}
    out, _ = _text(gf(root, "dupes"))
    assert "1 group(s) of duplicates" in out and "Text.make_slug" in out and "[feature]" in out

    # filters: a group counts when one of its functions is in that package / on that branch
    assert len(orjson.loads(gf(root, "dupes", "--json", "--package", "Text").stdout)) == 1
    assert len(orjson.loads(gf(root, "dupes", "--json", "--branch", "master").stdout)) == 1
    assert orjson.loads(gf(root, "dupes", "--json", "--package", "Nope").stdout) == []
    # Base saved on feature too: the same file on two branches is not itself a group, but
    # the copy joins the one group
    gf(root, "save", "--all")
    groups = orjson.loads(gf(root, "dupes", "--json").stdout)
    assert len(groups) == 1
    members = {(m["name"], m["branch"]) for m in groups[0]["functions"]}
    assert members == {
        ("Base.slug", "master"),
        ("Base.slug", "feature"),
        ("Text.make_slug", "feature"),
    }


def test_other_logic_is_not_a_duplicate(two_branches: Path) -> None:
    root = two_branches
    changed = SLUG_COPY.replace("plain.lower()", "plain.upper()")
    (root / "Text" / "make_slug.py").write_text(changed)
    _commit(root, "upper-case slugs")
    out, err = _text(gf(root, "save", "Text.make_slug"))
    assert "saved" in out and "warning" not in err
    assert orjson.loads(gf(root, "dupes", "--json").stdout) == []
    assert "no duplicates" in _text(gf(root, "dupes"))[0]


def test_gfbase_save_returns_and_warns_the_duplicates(two_branches: Path) -> None:
    root = two_branches
    base = GFBase(str(root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = base.save("Text.make_slug")
    assert result.added
    assert result.duplicates == ("sp_GlobalFunc.Base_master.slug",)
    said = [w for w in caught if issubclass(w.category, DuplicateFunction)]
    assert len(said) == 1 and "sp_GlobalFunc.Base_master.slug" in str(said[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = base.save("Text.make_slug")
    assert not again.added and again.duplicates == ()
    assert not [w for w in caught if issubclass(w.category, DuplicateFunction)]


def test_describe_then_search_finds_it_and_history_keeps_each_text(
    packages_repo: Path,
) -> None:
    root = packages_repo
    gf(root, "save", "--all")
    # no function says "kebab" anywhere yet
    assert "Base.slug" not in _text(gf(root, "search", "kebab case", check=False))[0]
    out, _ = _text(gf(root, "describe", "Base.slug", "Kebab-case identifier from any title"))
    assert "described sp_GlobalFunc.Base_master.slug" in out
    out, _ = _text(gf(root, "search", "kebab"))
    assert out.splitlines()[0].startswith("Base.slug(")
    assert "Kebab-case identifier" in out
    out, _ = _text(gf(root, "describe", "Base.slug", "Kebab-case identifier from any title"))
    assert "already has that description" in out
    gf(root, "describe", "Base.slug", "URL-safe name for a page")
    out, _ = _text(gf(root, "search", "kebab", check=False))
    assert "Base.slug" not in out  # the old description is history, not searched
    assert _text(gf(root, "search", "page"))[0].splitlines()[0].startswith("Base.slug(")

    out, _ = _text(gf(root, "history", "Base.slug"))
    assert "history (3 versions" in out
    lines = out.splitlines()[1:]
    assert "URL-safe name for a page" in lines[0]
    assert "Kebab-case identifier from any title" in lines[1]
    assert "description" not in lines[2]  # the first save had none
    # a new version of the code keeps the description
    path = root / "Base" / "slug.py"
    path.write_text(
        path.read_text().replace("result = sep.join(words)", "result = sep.join(words)  # joined")
    )
    _commit(root, "a comment")
    gf(root, "save", "Base.slug")
    out, _ = _text(gf(root, "history", "Base.slug"))
    assert "history (4 versions" in out and "URL-safe name for a page" in out.splitlines()[1]
    gf(root, "describe", "Base.slug", "")
    assert "Base.slug" not in _text(gf(root, "search", "page", check=False))[0]


@pytest.fixture
def served(two_branches: Path, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = two_branches
    gf(root, "save", "--all")  # feature: Base and Text
    _checkout(root, "master")
    server = ServerProcess.gf_serve(root, tmp_path, "--mode", "inline").start()
    try:
        yield root, server.url
    finally:
        server.stop()


def _search(url: str, **params: Any) -> list[str]:
    r = requests.get(url + "search", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return [f["name"] for f in r.json()["functions"]]


def test_get_search_filters_by_package_and_branch(served: tuple[Path, str]) -> None:
    _root, url = served
    assert _search(url, q="slug")[:1] == ["Base.slug"]
    assert "Text.make_slug" not in _search(url, q="slug")  # served branch: master
    on_feature = _search(url, q="slug", branch="feature")
    assert set(on_feature[:2]) == {"Base.slug", "Text.make_slug"}
    assert _search(url, q="slug", branch="feature", package="Text") == ["Text.make_slug"]
    assert _search(url, q="slug", package="Text") == []  # master has no Text
    assert _search(url, q="slug", branch="nope") == []
    r = requests.get(url + "search", params={"q": "slug", "limit": "x"}, timeout=30)
    assert r.status_code == 400 and "limit 'x' is not an integer" in r.text
