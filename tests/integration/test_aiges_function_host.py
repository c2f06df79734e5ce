"""``python -m server.aiges --function`` runs its calls through the one call path.

A real plugin process on each server (grpcio and the native one), driven as the loader
drives it, over a packages folder in a temp dir: the folder is scanned into an in-memory
registry, the record is written out under ``GF_CACHE_DIR`` and imported from there, and
the invoke path's argument check and serialization answer (a positional-only parameter
sent by name is 10106 with the signature; an integer past 64 bits comes back exact).
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from pathlib import Path

import pytest

from server.aiges.client import LoaderClient, loader_env
from tests.integration.aiges_support import native_not_built

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FILES = {
    "huge": "def huge(n: int = 30):\n    return {'value': 10**n}\n",
    "positional": "def positional(a, /, b=2):\n    return [a, b]\n",
    "later": """
        import asyncio

        async def later(x: int = 1):
            await asyncio.sleep(0)
            return x * 2
    """,
}


@pytest.fixture(params=["python", "native"])
def flavour(request: pytest.FixtureRequest) -> str:
    if request.param == "native" and not list((REPO / "server" / "aiges").glob("_native*.so")):
        pytest.fail(native_not_built())
    return str(request.param)


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    root = tmp_path / "packages"
    (root / "Host").mkdir(parents=True)
    for name, code in FILES.items():
        (root / "Host" / f"{name}.py").write_text(textwrap.dedent(code).lstrip())
    return root


def plugin(flavour: str, packages: Path, function: str, cache: Path) -> LoaderClient:
    parts = [sys.executable, "-m", "server.aiges", "--server", flavour]
    parts += ["--function", function, "--root", str(packages)]
    env = loader_env(PYTHONPATH=str(REPO), GF_CACHE_DIR=str(cache))
    command = " ".join(map(shlex.quote, parts))
    return LoaderClient.start(command, env=env, cwd=REPO, timeout=30)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_results_are_serialized_by_the_invoke_path(
    flavour: str, packages: Path, cache: Path
) -> None:
    with plugin(flavour, packages, "Host.huge", cache) as client:
        assert client.init() == 0
        reply = client.once({"n": "30"})
        assert reply.ret == 0
        assert [(d.key, json.loads(d.data)) for d in reply.list] == [("result", {"value": 10**30})]
    # the scanned record was written out under GF_CACHE_DIR and imported from there
    assert list(cache.glob("*/Host/huge.py"))


def test_the_argument_check_is_the_executors(flavour: str, packages: Path, cache: Path) -> None:
    with plugin(flavour, packages, "Host.positional", cache) as client:
        assert client.init() == 0
        reply = client.once({"a": "1"})
        assert reply.ret == 10106 and not reply.list


def test_async_functions_are_awaited(flavour: str, packages: Path, cache: Path) -> None:
    with plugin(flavour, packages, "Host.later", cache) as client:
        assert client.init() == 0
        reply = client.once({"x": "21"})
        assert reply.ret == 0 and json.loads(reply.list[0].data) == 42
