"""``gf aiges create`` makes a project that starts (issue 9 item 13).

The project's ``pythonPluginCmd`` is run exactly as the AIGES loader runs it (``bash -c``
in the project folder, the loader's environment, handshake, health, init with the
``[wrapper]`` table, schema, one once exec answered on ``communicate``), with GlobalFunc
installed in the ``python`` on ``PATH`` (the test's virtualenv), not found through the
repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from server.aiges.client import LoaderClient, PluginStartError, loader_env
from server.aiges.scaffold import create_project
from server.aiges.schema import dialect_violations

pytestmark = pytest.mark.integration

SERVING = 1


def installed_env() -> dict[str, str]:
    """The loader's environment with this virtualenv's ``python`` first on PATH."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "python").exists():
        pytest.fail(f"{bin_dir} has no 'python'; run the tests from the project's virtualenv")
    env = loader_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)  # GlobalFunc comes from the installed distribution
    return env


def plugin_command(root: Path) -> tuple[str, dict[str, str]]:
    toml = tomllib.loads((root / "aiges.toml").read_text())
    return toml["aiges"]["pythonPluginCmd"], {k: str(v) for k, v in toml["wrapper"].items()}


def test_the_generated_command_starts_inits_and_answers_a_once_exec(tmp_path: Path) -> None:
    root = create_project("demo-svc", tmp_path)
    command, config = plugin_command(root)
    assert "--log-file ./log/plugin.log" in command and (root / "log").is_dir()
    config["greeting"] = "> "
    with LoaderClient.start(command, env=installed_env(), cwd=root, timeout=60) as client:
        assert client.health() == SERVING
        assert client.init(config) == 0, client.stderr_text()
        schema = client.schema("")
        assert schema["meta"]["route"] == "/v1/private/demo_svc"
        assert dialect_violations(schema) == []
        data = (root / "wrapper" / "test_data" / "text.txt").read_bytes()
        reply = client.once({"mode": "upper"}, [client.text("text", data)], timeout=30)
        assert reply.ret == 0
        assert [(item.key, item.data) for item in reply.list] == [("result", b"> HELLO WORLD\n")]
        # it leaves when the loader says so (exit codes are test_aiges_plugin's business)
        assert client.shutdown(20) is not None, client.stderr_text()[-3000:]
    log = (root / "log" / "plugin.log").read_text()
    assert "demo-svc init" in log  # the wrapper's log.info went to the project's log file


def test_without_the_log_folder_the_command_cannot_start(tmp_path: Path) -> None:
    # What the scaffold's log/ folder is for: the plugin does not create it.
    root = create_project("nolog", tmp_path)
    shutil.rmtree(root / "log")
    command, _ = plugin_command(root)
    with pytest.raises(PluginStartError, match=r"log/plugin\.log"):
        LoaderClient.start(command, env=installed_env(), cwd=root, timeout=60).close()


def test_the_requirements_install_from_an_index_and_say_how_to_get_globalfunc(
    tmp_path: Path,
) -> None:
    root = create_project("reqs", tmp_path)
    text = (root / "requirements.txt").read_text()
    requirements = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert requirements == []  # nothing an index does not have (no 'globalfunc' line)
    assert "make wheel" in text and "git+" in text
    readme = (root / "README.md").read_text()
    assert "## Install GlobalFunc" in readme and "make wheel" in readme
    assert "./wheels/globalfunc-*.whl" in (root / "Dockerfile").read_text()
    assert (root / "wheels" / ".gitkeep").is_file() and (root / "log" / ".gitkeep").is_file()
