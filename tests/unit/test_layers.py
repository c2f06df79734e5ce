"""The layer rules of docs/architecture.md that import-linter cannot see on its own.

``make lint`` runs ``lint-imports`` with the contracts in pyproject.toml; these tests
keep the contract's list of core modules complete and check that ``gf``'s parser is
built without importing an edge (the CLI may import one only inside a command).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import globalfunc

REPO = Path(__file__).resolve().parents[2]


def _contract(contract_id: str) -> dict[str, object]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c.get("id") == contract_id)


def test_the_core_contract_names_every_core_module() -> None:
    core = set(_contract("core")["source_modules"])  # type: ignore[arg-type]
    modules = {f"globalfunc.{m.name}" for m in pkgutil.iter_modules(globalfunc.__path__)}
    assert modules - {"globalfunc.cli"} == core, "list new core modules in pyproject.toml"
    assert set(_contract("core")["forbidden_modules"]) == {  # type: ignore[arg-type]
        "gfbase",
        "gfgo",
        "server",
        "globalfunc.cli",
    }


def test_building_the_parser_imports_no_edge() -> None:
    probe = (
        "import sys\n"
        "from globalfunc.cli import build_parser\n"
        "build_parser().parse_args(['aiges', 'create', '-n', 'x'])\n"
        "heavy = ('server', 'gfbase', 'gfgo', 'git', 'grpc', 'tornado', 'redis', 'pymongo')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_gf_aiges_serve_help_is_the_plugins() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", "aiges", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: gf aiges serve") and "--wrapper" in done.stdout
