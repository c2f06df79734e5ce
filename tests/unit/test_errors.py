"""The error tree's client-side rules: BadArguments is a TypeError, remote built-ins keep their type."""

from __future__ import annotations

import pickle

import pytest

from globalfunc.errors import (
    BadArguments,
    ExecutionError,
    ExecutionTimeout,
    GlobalFuncError,
    error_from_dict,
    remote_error_class,
)
from globalfunc.storage.base import redact_url


def test_bad_arguments_is_a_type_error() -> None:
    err = error_from_dict(
        {"error": "BadArguments", "message": "no x", "details": {"signature": "f(y)"}}
    )
    assert isinstance(err, BadArguments) and isinstance(err, TypeError)
    assert err.details == {"signature": "f(y)"} and str(err) == "no x"


@pytest.mark.parametrize(
    "kind", [ValueError, KeyError, ZeroDivisionError, OSError, FileNotFoundError, AttributeError]
)
def test_a_remote_builtin_is_both_types(kind: type[Exception]) -> None:
    body = {
        "error": "ExecutionError",
        "message": "P.f raised it",
        "details": {"exc_type": kind.__name__},
    }
    err = error_from_dict(body)
    assert isinstance(err, kind) and isinstance(err, ExecutionError)
    assert type(err) is remote_error_class(kind)  # made once per type
    assert type(err).__name__ == f"ExecutionError({kind.__name__})"
    assert str(err) == "P.f raised it"  # not KeyError's repr
    assert err.to_dict() == {
        "error": "ExecutionError",
        **{k: v for k, v in body.items() if k != "error"},
    }
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and back.details == err.details


@pytest.mark.parametrize(
    "name", ["UnicodeDecodeError", "SystemExit", "ExceptionGroup", "Nope", "os.system", 3]
)
def test_other_types_stay_plain(name: object) -> None:
    err = error_from_dict(
        {"error": "ExecutionError", "message": "m", "details": {"exc_type": name}}
    )
    assert type(err) is ExecutionError


def test_only_execution_error_is_mixed() -> None:
    err = error_from_dict(
        {"error": "ExecutionTimeout", "message": "m", "details": {"exc_type": "ValueError"}}
    )
    assert type(err) is ExecutionTimeout
    assert type(error_from_dict({"error": "Strange", "message": "m"})) is GlobalFuncError


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://h:6379/0?password=s3cret", "redis://h:6379/0?password=***"),
        ("redis://h/0?db=1&Password=s3cret&x=1", "redis://h/0?db=1&Password=***&x=1"),
        (
            "tiered+redis://h/0?password=a|mongodb://u:b@m/x",
            "tiered+redis://h/0?password=***|mongodb://u:***@m/x",
        ),
    ],
)
def test_redact_url_hides_every_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
