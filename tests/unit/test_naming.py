"""Names: call names, scan keys, storage keys, branch encoding, and every invalid form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from globalfunc.errors import InvalidName
from globalfunc.naming import (
    CallName,
    decode_tier2,
    encode_tier2,
    key_prefix,
    key_text,
    make_storage_key,
    parse_call_name,
    parse_scan_key,
    parse_storage_key,
)


def test_seed_key_shape() -> None:
    key = make_storage_key("Base.to_pickle", "master")
    assert str(key) == "sp_GlobalFunc.Base_master.to_pickle"
    assert key.space == "sp_GlobalFunc.Base_master"
    assert parse_storage_key(str(key)) == key


def test_call_name_and_scan_key() -> None:
    assert parse_call_name("Base.to_pickle") == CallName("Base", "to_pickle")
    assert parse_scan_key("Base.inverse_time_str.py") == CallName("Base", "inverse_time_str")
    nested = parse_call_name("pkg.sub.func")
    assert nested.package == "pkg.sub" and nested.relpath == "pkg/sub/func.py"
    assert nested.scan_key == "pkg.sub.func.py"


@pytest.mark.parametrize(
    ("package", "branch", "tier2"),
    [
        ("Base", "master", "Base_master"),
        ("my_pkg", "dev", "my__pkg_dev"),
        ("Base", "feature/x", "Base_feature+x"),
        ("Base", "release-1.2", "Base_release-1=2"),
        ("pkg.sub", "main", "pkg-sub_main"),
        ("a_", "b_c", "a___b_c"),
        ("Base", "ünï", "Base_%C3%BCn%C3%AF"),
    ],
)
def test_tier2_round_trip(package: str, branch: str, tier2: str) -> None:
    assert encode_tier2(package, branch) == tier2
    assert decode_tier2(tier2) == (package, branch)


@given(
    package=st.from_regex(
        r"[A-Za-z][A-Za-z0-9_]{0,8}(\.[A-Za-z][A-Za-z0-9_]{0,8}){0,2}", fullmatch=True
    ),
    branch=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-/+=%]{0,20}[A-Za-z0-9]", fullmatch=True),
)
def test_tier2_round_trip_property(package: str, branch: str) -> None:
    try:
        tier2 = encode_tier2(package, branch)
    except InvalidName:
        return  # keywords, '//' and friends are refused up front
    assert "." not in tier2
    assert decode_tier2(tier2) == (package, branch)


@given(
    package=st.from_regex(
        r"[A-Za-z][A-Za-z0-9_]{0,8}(\.[A-Za-z][A-Za-z0-9_]{0,8}){0,2}", fullmatch=True
    ),
    branch=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-/+=%]{0,20}[A-Za-z0-9]", fullmatch=True),
)
def test_keys_start_with_their_prefix_property(package: str, branch: str) -> None:
    try:
        key = key_text("sp_GlobalFunc", package, branch, "f")
    except InvalidName:
        return
    assert key.startswith(key_prefix("sp_GlobalFunc", package))
    assert key.startswith(key_prefix("sp_GlobalFunc"))
    assert not key.startswith(key_prefix("sp_GlobalFunc", package + "_x"))


def test_distinct_pairs_never_collide() -> None:
    pairs = [("a_b", "c"), ("a", "b_c"), ("a_b_c", "d"), ("a", "b/c"), ("a", "b.c"), ("a", "b+c")]
    tier2s = [encode_tier2(p, b) for p, b in pairs]
    assert len(set(tier2s)) == len(pairs)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("to_pickle", "no package"),
        ("Base.", "empty"),
        (".to_pickle", "empty"),
        ("Base.__init__", "starts with '_'"),
        ("Base._private", "starts with '_'"),
        ("__builtins__.eval", "starts with '_'"),
        ("Base.to-pickle", "not a valid identifier"),
        ("Base/evil.f", "path separator"),
        ("..Base.f", "empty"),
        ("Base.class", "keyword"),
        ("Base.match", "keyword"),
        ("Base." + "x" * 101, "at most"),
        ("a." * 130 + "b", "at most"),
        ("Base.1abc", "not a valid identifier"),
        ("Base.f g", "not a valid identifier"),
    ],
)
def test_invalid_call_names(name: str, fragment: str) -> None:
    with pytest.raises(InvalidName) as info:
        parse_call_name(name)
    assert fragment in info.value.message
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    "branch",
    [
        "",
        "a..b",
        "-x",
        "x/",
        "x.lock",
        "has space",
        "a~b",
        "a^b",
        "a:b",
        "a?b",
        "a*b",
        "a[b",
        "a\\b",
        "@",
        "a@{b",
        "a//b",
    ],
)
def test_invalid_branches(branch: str) -> None:
    with pytest.raises(InvalidName):
        make_storage_key("Base.f", branch)


@pytest.mark.parametrize(
    "key",
    [
        "Base_master.to_pickle",
        "a.b.c.d",
        "sp_GlobalFunc.Basemaster.to_pickle",
        "sp_GlobalFunc.Base_master.__init__",
        "1sp.Base_master.f",
        "sp.Base_ma%ZZ.f",
        "sp.Base_ma$ter.f",
    ],
)
def test_invalid_storage_keys(key: str) -> None:
    with pytest.raises(InvalidName):
        parse_storage_key(key)


def test_scan_key_must_be_a_py_file() -> None:
    with pytest.raises(InvalidName):
        parse_scan_key("Base.to_pickle")


def test_key_text_validates_every_part() -> None:
    assert key_text("sp_GlobalFunc", "Base", "master", "to_pickle") == (
        "sp_GlobalFunc.Base_master.to_pickle"
    )
    for parts in [
        ("sp_GlobalFunc", "Base", "master", "__init__"),
        ("sp_GlobalFunc", "Base", "master", "class"),
        ("sp_GlobalFunc", "_Base", "master", "f"),
        ("sp_GlobalFunc", "Base", "bad..branch", "f"),
        ("1sp", "Base", "master", "f"),
    ]:
        with pytest.raises(InvalidName):
            key_text(*parts)


# -- branch names by git's own rules (git help check-ref-format) ----------------------------

_GIT_FORBIDDEN_CHARS = set("~^:?*[\\ ") | {chr(c) for c in range(0x20)} | {"\x7f"}


def _git_accepts_branch(name: str) -> bool:
    """git check-ref-format --branch, written from its documented rules (not from ours)."""
    if not name or name == "@" or name.startswith("-") or name.endswith((".", "/")):
        return False
    if ".." in name or "@{" in name or any(ch in _GIT_FORBIDDEN_CHARS for ch in name):
        return False
    components = name.split("/")
    return all(c and not c.startswith(".") and not c.endswith(".lock") for c in components)


_component = st.text(
    alphabet=st.one_of(
        st.sampled_from("_-./+=%@{}!#$&'()<>,;\"|`ab_AZ09"),
        st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=("Cs",)),
    ),
    min_size=1,
    max_size=12,
)
git_branch_names = (
    st.lists(_component, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda n: len(n.encode()) <= 60)
    .filter(_git_accepts_branch)
)
_package = st.from_regex(
    r"[A-Za-z][A-Za-z0-9_]{0,6}_?(\.[A-Za-z][A-Za-z0-9_]{0,6}){0,2}", fullmatch=True
).filter(lambda p: all(not keyword_like(part) for part in p.split(".")))


def keyword_like(part: str) -> bool:
    import keyword

    return keyword.iskeyword(part) or keyword.issoftkeyword(part)


def test_generator_agrees_with_git(tmp_path: object) -> None:
    """The rules above are git's: check a sample of names, leading '_' included, with git."""
    import shutil
    import subprocess

    git = shutil.which("git")
    assert git is not None, "git is not installed: apt-get install git"
    names = ["_x_y", "_", "a/_b", "__", "feature/x", "a.b-c", "x@y", "ü/€", "a+b=c%d"]
    bad = ["-x", "a..b", "a/.b", "a.lock", "a/", "a b", "a@{b", "a.", ".a", "a//b"]
    for name in names + bad:
        ok = subprocess.run([git, "check-ref-format", "--branch", name], capture_output=True)
        assert (ok.returncode == 0) == _git_accepts_branch(name), name


@given(git_branch_names | git_branch_names.map(lambda n: "_" + n).filter(_git_accepts_branch))
def test_every_git_branch_name_round_trips(branch: str) -> None:
    for package in ("Base", "Base_x", "a_", "pkg.sub"):
        tier2 = encode_tier2(package, branch)
        assert "." not in tier2
        assert decode_tier2(tier2) == (package, branch)
        key = key_text("sp_GlobalFunc", package, branch, "f")
        assert parse_storage_key(key).branch == branch


_branch_or_underscored = git_branch_names | git_branch_names.map(lambda n: "_" + n)


@given(_package, _branch_or_underscored, _package, _branch_or_underscored)
def test_encoding_is_one_to_one_for_git_branch_names(
    package_a: str, branch_a: str, package_b: str, branch_b: str
) -> None:
    if (package_a, branch_a) != (package_b, branch_b):
        assert encode_tier2(package_a, branch_a) != encode_tier2(package_b, branch_b)


def test_leading_underscore_branch_no_longer_collides() -> None:
    assert encode_tier2("Base", "_x_y") != encode_tier2("Base_x", "y")
    assert decode_tier2(encode_tier2("Base", "_x_y")) == ("Base", "_x_y")
    assert decode_tier2("Base__x_y") == ("Base_x", "y")  # what that key always meant
    assert encode_tier2("Base", "master") == "Base_master"  # ordinary names unchanged


def test_non_canonical_tier2_is_refused() -> None:
    with pytest.raises(InvalidName, match="canonical"):
        decode_tier2("Base_%6Daster")
