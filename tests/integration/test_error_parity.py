"""One ``except`` clause for a local call (GFGo) and a remote one (GFClient to ``gf serve``).

A bad argument is a ``TypeError`` both ways (``BadArguments`` remotely); a function that
raised a built-in exception raises that type both ways (remotely as
``ExecutionError(<type>)``, also an ``ExecutionError``). The server is a real
``gf serve`` subprocess, in both of its modes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gfgo import GFGo
from globalfunc.client import GFClient
from globalfunc.errors import BadArguments, ExecutionError
from tests.integration.serve_support import ServerProcess, clean_env, make_repo

pytestmark = pytest.mark.integration

Call = Callable[..., Any]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("parity") / "packages")


@pytest.fixture(scope="module", params=["inline", "isolated"])
def remote(root: Path, request: pytest.FixtureRequest) -> Iterator[Call]:
    server = ServerProcess.gf(root, "serve", "--port", "0", env=clean_env(GF_MODE=request.param))
    server.start()
    client = GFClient(server.url)
    try:
        yield client.call
    finally:
        client.close()
        server.stop()


@pytest.fixture(scope="module")
def local(root: Path) -> Call:
    return GFGo(root).call


def _which(call: Call, *args: Any, **kwargs: Any) -> str:
    """The ``except`` clause that caught the call's error (the same code for both)."""
    try:
        call(*args, **kwargs)
    except TypeError:
        return "TypeError"
    except KeyError:  # before LookupError, as a user would write it
        return "KeyError"
    except ZeroDivisionError:
        return "ZeroDivisionError"
    except ValueError:
        return "ValueError"
    except OSError:
        return "OSError"
    return "no error"


@pytest.mark.parametrize("kind", ["ValueError", "KeyError", "ZeroDivisionError", "OSError"])
def test_a_builtin_exception_is_caught_by_its_type(local: Call, remote: Call, kind: str) -> None:
    assert _which(local, "Raising.raise_builtin", kind=kind) == kind
    assert _which(remote, "Raising.raise_builtin", kind=kind) == kind


def test_a_bad_argument_is_a_type_error(local: Call, remote: Call) -> None:
    assert _which(local, "Raising.raise_builtin", nope="x") == "TypeError"
    assert _which(remote, "Raising.raise_builtin", nope="x") == "TypeError"
    with pytest.raises(BadArguments, match=r"raise_builtin\(kind"):
        remote("Raising.raise_builtin", nope="x")


def test_the_remote_error_is_also_an_execution_error(remote: Call) -> None:
    with pytest.raises(ExecutionError) as info:
        remote("Raising.raise_builtin", kind="KeyError", message="missing")
    err = info.value
    assert isinstance(err, KeyError) and type(err).__name__ == "ExecutionError(KeyError)"
    assert err.details["exc_type"] == "KeyError" and "missing" in str(err)
    assert err.to_dict()["error"] == "ExecutionError"  # what a proxy would send on


def test_a_user_defined_exception_stays_execution_error(local: Call, remote: Call) -> None:
    with pytest.raises(Exception, match="mine") as here:
        local("Raising.raise_own")
    assert type(here.value).__name__ == "OwnError"
    with pytest.raises(ExecutionError, match="mine") as there:
        remote("Raising.raise_own")
    assert type(there.value) is ExecutionError
    assert there.value.details["exc_type"].endswith("OwnError")
