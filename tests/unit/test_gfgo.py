"""GFGo: resolving names from a folder, a module and a registry; the seed's call forms."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gfgo import GFGo, Resolver, get_func_by_para
from globalfunc.errors import FunctionNotFound, IntegrityError, InvalidName
from globalfunc.registry import Registry
from globalfunc.scan import Scanner
from tests.factories import write_function

SEED_KWARGS = {"time_str": "2024-02-15 11:11:11", "bias_hours": -8}


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_seed_call_from_packages_folder(base_packages: Path, utc: None) -> None:
    gfgo = GFGo()
    assert (
        gfgo._exe_func_kwargs(
            global_func=base_packages, pack_func="Base.inverse_time_str", kwargs=SEED_KWARGS
        )
        == 1707966671
    )
    assert (
        GFGo._exe_func_args(
            global_func=base_packages,
            pack_func="Base.inverse_time_str",
            args=["2024-02-15 11:11:11", -8],
        )
        == 1707966671
    )
    func = get_func_by_para(str(base_packages), "Base.inverse_time_str")
    assert func(**SEED_KWARGS) == 1707966671


def test_seed_call_from_imported_package_module(tmp_path: Path, utc: None) -> None:
    top = tmp_path / "FuncsTop"
    write_function(top, "Base", "plus_one")
    (top / "Base" / "__init__.py").write_text("import os\nfrom .plus_one import plus_one\n")
    (top / "__init__.py").write_text("from . import Base\n")
    sys.path.insert(0, str(tmp_path))
    try:
        funcs = importlib.import_module("FuncsTop")
        assert (
            GFGo._exe_func_kwargs(global_func=funcs, pack_func="Base.plus_one", kwargs={"x": 41})
            == 42
        )
        with pytest.raises(FunctionNotFound):
            get_func_by_para(funcs, "Base.os")  # a module global, not a function of the package
        with pytest.raises(FunctionNotFound):
            get_func_by_para(funcs, "Base.nope")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("FuncsTop")]:
            del sys.modules[name]


def test_names_are_validated_before_any_lookup(base_packages: Path) -> None:
    resolver = Resolver(base_packages)
    for bad in [
        "Base.__init__",
        "Base.to_pickle.__globals__",
        "os.system",
        "Base",
        "Base._x",
        "../etc.passwd",
    ]:
        with pytest.raises((InvalidName, FunctionNotFound)):
            resolver.resolve(bad)


def test_non_function_attribute_is_not_callable(tmp_path: Path) -> None:
    write_function(tmp_path, "Pk", "thing", "import os\nthing = os.system\n")
    with pytest.raises(FunctionNotFound):
        Resolver(tmp_path).resolve("Pk.thing")


def test_registry_root_materializes_and_caches(
    tmp_path: Path, utc: None, base_packages: Path
) -> None:
    reg = Registry.open(f"sqlite://{tmp_path / 'reg.db'}")
    reg.save_many(Scanner(base_packages).scan().functions.values())
    cache = tmp_path / "cache"
    gfgo = GFGo(resolver=Resolver(reg, cache_dir=cache))
    assert gfgo.call("Base.inverse_time_str", **SEED_KWARGS) == 1707966671
    sha = reg.get("Base.inverse_time_str").sha256
    assert (cache / sha / "Base" / "inverse_time_str.py").exists()
    assert gfgo.resolver is not None and gfgo.resolver.record("Base.inverse_time_str").sha256 == sha
    with pytest.raises(FunctionNotFound):
        gfgo.call("Base.never_saved")
    reg.close()


def test_registry_root_refuses_corrupted_code(tmp_path: Path) -> None:
    import sqlite3

    write_function(tmp_path / "pk", "Base", "f")
    reg = Registry.open(f"sqlite://{tmp_path / 'reg.db'}")
    reg.save_many(Scanner(tmp_path / "pk").scan().functions.values())
    con = sqlite3.connect(tmp_path / "reg.db")
    con.execute("UPDATE blobs SET code = 'import os\ndef f(x=1):\n    return os.getpid()\n'")
    con.commit()
    con.close()
    with pytest.raises(IntegrityError):
        Resolver(reg, cache_dir=tmp_path / "cache").resolve("Base.f")
    reg.close()


def test_reload_invalidates_resolution(tmp_path: Path) -> None:
    write_function(tmp_path, "Reloadable", "value", "def value() -> int:\n    return 1\n")
    gfgo = GFGo(tmp_path)
    assert gfgo.call("Reloadable.value") == 1
    write_function(tmp_path, "Reloadable", "value", "def value() -> int:\n    return 2  # edited\n")
    assert gfgo.call("Reloadable.value") == 1  # cached until reloaded
    gfgo.reload("Reloadable")
    assert gfgo.call("Reloadable.value") == 2


def test_import_gfgo_loads_no_git_and_the_core_no_facade_or_edge() -> None:
    """Layers: ``import gfgo`` leaves GitPython unloaded; the registry core (naming, scan,
    record, storage, registry, resolve, workspace, files) imports no facade or edge."""
    import subprocess
    import sys

    core = (
        "import sys\n"
        "import globalfunc.naming, globalfunc.scan, globalfunc.record, globalfunc.registry\n"
        "import globalfunc.resolve, globalfunc.workspace, globalfunc.files\n"
        "import globalfunc.storage.sqlite, globalfunc.storage.redis, globalfunc.storage.mongo\n"
        "import globalfunc.storage.tiered\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('gfbase', 'gfgo', 'server')\n"
        "       or m.startswith('globalfunc.cli')]\n"
        "assert not bad, bad\n"
        "assert 'git' not in sys.modules, 'the core loaded GitPython'\n"
    )
    facade = (
        "import sys, gfgo\n"
        "assert 'git' not in sys.modules, 'gfgo loaded GitPython'\n"
        "import globalfunc.resolve\n"
        "from gfgo.resolve import Resolver\n"
        "assert Resolver is globalfunc.resolve.Resolver\n"
    )
    for code in (core, facade):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
