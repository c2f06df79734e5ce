"""Where the plugin finds the wrapper, and whose ``server`` module the wrapper imports.

- ``python -m server.aiges`` with no ``--wrapper``/``--function`` hosts ``wrapper.py``
  from the current folder, else from ``PYTHONPATH``, as ``python -m aiges.serve`` does.
- A wrapper with its own ``server.py`` or ``server/`` package beside it imports that,
  not GlobalFunc's ``server`` package, at import time and at call time.

Real plugin processes on both servers, driven like the loader.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.aiges.client import LoaderClient
from tests.integration.aiges_support import REPO, SERVERS, command, env, require_server

pytestmark = pytest.mark.integration

WRAPPER = """
try:
    from aiges_embed import Response, ResponseData
except ImportError:
    from aiges.dto import Response, ResponseData
from aiges.sdk import StringBodyField, WrapperBase
{imports}


class UserRequest:
    text = StringBodyField(key="text")


class UserResponse:
    result = StringBodyField(key="result")


class Wrapper(WrapperBase):
    serviceId = "imports"
    version = "v1"
    requestCls = UserRequest()
    responseCls = UserResponse()

    def wrapperInit(self, config) -> int:
        return 0

    def wrapperOnceExec(self, params, reqData, usrTag="", persId=0):
        import server as late  # imported again at call time: still the user's

        text = {answer} + "|" + getattr(late, "WHO", "ours")
        res = Response()
        res.list = [ResponseData("result", text.encode(), 0, 0, 3)]
        return res
"""


def _project(root: Path, kind: str) -> Path:
    """A wrapper project: ``plain`` (no server module), ``file`` (server.py), ``package``."""
    root.mkdir(parents=True)
    if kind == "plain":
        imports, answer = "", '"plain"'
    elif kind == "file":
        (root / "server.py").write_text('WHO = "user server.py"\n')
        imports, answer = "from server import WHO", "WHO"
    else:
        (root / "server").mkdir()
        (root / "server" / "__init__.py").write_text('WHO = "user server package"\n')
        (root / "server" / "util.py").write_text("def shout(s):\n    return s.upper()\n")
        imports, answer = "from server.util import shout", 'shout("pkg")'
    (root / "wrapper.py").write_text(WRAPPER.format(imports=imports, answer=answer))
    return root


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    require_server(request.param)
    yield request.param


def _answer(client: LoaderClient) -> bytes:
    assert client.init() == 0, client.stderr_text()[-3000:]
    reply = client.once({}, [client.text("text", "x")], timeout=10)
    assert reply.ret == 0, client.stderr_text()[-3000:]
    return reply.list[0].data


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("file", b"user server.py|user server.py"), ("package", b"PKG|user server package")],
)
def test_the_wrappers_own_server_module_wins(
    server: str, kind: str, expected: bytes, tmp_path: Path
) -> None:
    project = _project(tmp_path / "project", kind)
    with LoaderClient.start(
        command(server, "--wrapper", str(project)), env=env(), cwd=REPO, timeout=30
    ) as client:
        assert _answer(client) == expected


def test_no_arguments_hosts_wrapper_py_of_the_current_folder(server: str, tmp_path: Path) -> None:
    project = _project(tmp_path / "project", "plain")
    with LoaderClient.start(command(server), env=env(), cwd=project, timeout=30) as client:
        assert _answer(client) == b"plain|ours"


def test_no_arguments_finds_wrapper_py_on_pythonpath(server: str, tmp_path: Path) -> None:
    project = _project(tmp_path / "project", "plain")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = os.pathsep.join([str(REPO), str(project)])
    with LoaderClient.start(
        command(server), env=env(PYTHONPATH=path), cwd=elsewhere, timeout=30
    ) as client:
        assert _answer(client) == b"plain|ours"


def test_no_arguments_beside_a_user_server_py_with_python_dash_p(
    server: str, tmp_path: Path
) -> None:
    # `python -m` puts the current folder first on sys.path, where the user's server.py
    # would hide our package before any of our code runs; -P (Python 3.11) leaves it off.
    project = _project(tmp_path / "project", "file")
    with LoaderClient.start(
        command(server, python=("-P",)), env=env(), cwd=project, timeout=30
    ) as client:
        assert _answer(client) == b"user server.py|user server.py"


def test_no_arguments_and_no_wrapper_py_is_a_one_line_error(server: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", "-c", command(server)],
        env=env(),
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 1 and proc.stdout == b""
    message = proc.stderr.decode().strip().splitlines()[-1]
    assert "no wrapper.py in the current folder or on PYTHONPATH" in message
    assert str(tmp_path) in message and "--wrapper" in message


def test_gf_aiges_serve_with_no_arguments_beside_a_user_server_py(
    server: str, tmp_path: Path
) -> None:
    gf = Path(sys.executable).with_name("gf")
    assert gf.is_file(), f"no gf console script beside {sys.executable}: pip install -e ."
    project = _project(tmp_path / "project", "file")
    plain = {k: v for k, v in env().items() if k != "PYTHONPATH"}  # GlobalFunc as installed
    with LoaderClient.start(
        f"{gf} aiges serve --server {server}", env=plain, cwd=project, timeout=30
    ) as client:
        assert _answer(client) == b"user server.py|user server.py"


@pytest.mark.parametrize("name", ["globalfunc", "gfgo", "gfbase"])
def test_the_wrappers_own_module_named_like_another_package_of_ours_wins(
    server: str, name: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / f"{name}.py").write_text(f'WHO = "user {name}.py"\n')
    (project / "wrapper.py").write_text(
        WRAPPER.format(imports=f"from {name} import WHO", answer="WHO")
    )
    with LoaderClient.start(
        command(server, "--wrapper", str(project)), env=env(), cwd=REPO, timeout=30
    ) as client:
        assert _answer(client) == f"user {name}.py|ours".encode()
