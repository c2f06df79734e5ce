"""GF_TOKEN_FILE: what is read as the token, and every way the file can be wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from globalfunc.errors import ConfigError
from globalfunc.settings import Settings


@pytest.mark.parametrize(
    ("content", "token"),
    [
        (b"abc", "abc"),
        (b"abc\n", "abc"),
        (b"abc\r\n", "abc"),
        (b" abc \n", " abc "),  # only the line end is stripped
    ],
)
def test_the_token_file_holds_the_token(tmp_path: Path, content: bytes, token: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    path.chmod(0o600)
    assert Settings(token_file=str(path)).bearer_token() == token


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "cannot read"),
        (b"", "empty"),
        (b"\n", "empty"),
        (b"  \n", "empty"),
        (b"a\nb\n", "more than one line"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_token_file_is_a_config_error(
    tmp_path: Path, content: bytes | None, match: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_bytes(content)
        path.chmod(0o600)
    with pytest.raises(ConfigError, match=match) as info:
        Settings(token_file=str(path)).bearer_token()
    assert "GF_TOKEN_FILE" in info.value.message and str(path) in info.value.message


def test_token_and_token_file_together_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("abc")
    with pytest.raises(ConfigError, match="both GF_TOKEN and GF_TOKEN_FILE"):
        Settings(token=SecretStr("abc"), token_file=str(path)).bearer_token()


def test_no_token_at_all_is_none() -> None:
    assert Settings(token=None, token_file=None).bearer_token() is None
    assert Settings(token=SecretStr("t"), token_file=None).bearer_token() == "t"


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o444, 0o660])
def test_a_token_file_its_group_or_others_can_read_is_a_config_error(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "token"
    path.write_text("secret-abc\n")
    path.chmod(mode)
    with pytest.raises(ConfigError) as info:
        Settings(token_file=str(path)).bearer_token()
    message = info.value.message
    assert str(path) in message and f"{mode:04o}" in message and "chmod 600" in message
    assert "GF_TOKEN_FILE" in message and "secret-abc" not in message
    assert "\n" not in message


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o620, 0o602])
def test_a_token_file_only_its_owner_can_read_is_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text("secret-abc\n")
    path.chmod(mode)
    assert Settings(token_file=str(path)).bearer_token() == "secret-abc"
