"""A result item's ``key`` given as bytes: decoded as UTF-8, never its repr.

``server.aiges.wrapper_host`` turns what a wrapper returns into frames for both gRPC servers
and for the C mode, so this one function decides what the loader sees. Not here: the
servers' transport (tests/integration/test_aiges_plugin.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from server.aiges.engine import normalise
from server.aiges.wrapper_host import outcome_from_response


@pytest.mark.parametrize(
    ("key", "want"),
    [
        (b"abc", "abc"),
        (bytearray(b"abc"), "abc"),
        ("h\u00e9".encode(), "h\u00e9"),
        (b"\xffab", "\ufffdab"),
        ("text", "text"),
        (None, ""),
    ],
)
def test_a_result_key_in_bytes_is_utf8_text(key: object, want: str) -> None:
    for item in (
        SimpleNamespace(key=key, data=b"x", type=0, status=3, desc={}),
        {"key": key, "data": b"x"},
    ):
        outcome = normalise(outcome_from_response(SimpleNamespace(error_code=0, list=[item])))
        assert outcome.ret == 0, outcome
        assert [f.key for f in outcome.frames] == [want]  # was "b'abc'"
