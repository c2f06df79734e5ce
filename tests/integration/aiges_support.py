"""Helpers shared by the AIGES plugin tests that run every case on both servers.

``server_flag`` is the pytest fixture parameter (``python`` = grpcio, ``native`` = the
C++ server); :func:`command` builds the plugin command the loader would run with it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from server.aiges.client import LoaderClient, loader_env
from server.aiges.native import why_missing

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "aiges"
SERVERS = ("python", "native")


def native_not_built() -> str:
    """Why the native server is missing and how to get it (the install builds it)."""
    return f"{why_missing('server.aiges._native')}; `make setup` does both"


def require_server(server: str) -> None:
    """Fail (never skip) when the native server is asked for and not built."""
    if server == "native" and not list((REPO / "server" / "aiges").glob("_native*.so")):
        pytest.fail(native_not_built())


def command(server: str, *args: str, python: tuple[str, ...] = ()) -> str:
    """``python [python flags] -m server.aiges --server SERVER args...`` as one shell line."""
    parts = [sys.executable, *python, "-m", "server.aiges", "--server", server, *args]
    return " ".join(map(shlex.quote, parts))


def env(**extra: str) -> dict[str, str]:
    """The loader's environment with GlobalFunc importable from the repository."""
    base = loader_env(PYTHONPATH=str(REPO), TZ="UTC")
    base.update(extra)
    return base


def start(server: str, *args: str, cwd: Path = REPO, **extra_env: str) -> LoaderClient:
    require_server(server)
    return LoaderClient.start(command(server, *args), env=env(**extra_env), cwd=cwd, timeout=30)
