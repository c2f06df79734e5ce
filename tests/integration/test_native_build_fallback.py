"""setup.py's native build on a machine that lacks part of the toolchain.

A temp copy of the build inputs (setup.py, pyproject.toml, native/, the protos) runs
``setup.py build_ext --inplace`` in a subprocess, the step ``pip install`` runs, with a
dependency hidden: no C++ compiler on ``PATH``, or a ``pkg-config`` that finds no grpc++ /
protobuf. The build must still succeed, build what it can, write ``native-build.json``
naming what is missing and how to get it, and say so once; with ``GF_REQUIRE_NATIVE=1`` the
same build must fail with a clear message. Objects already compiled in this checkout's
``build/native`` are copied along, so the buildable parts are only linked, not recompiled.

Not here: the native parts' behaviour (test_aiges_cabi.py, test_aiges_embed.py, the plugin
tests), or a full ``pip install`` into a new venv (too slow for the suite).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.aiges import native
from tests.integration.aiges_support import REPO

pytestmark = pytest.mark.integration

ONCE = "native parts NOT built"
HOW = "scripts/system-deps.sh"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The build's inputs in a temp folder (setup.py builds relative to its own folder)."""
    root = tmp_path / "src"
    root.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "native" / "aiges", root / "native" / "aiges")
    shutil.copytree(REPO / "server" / "aiges" / "proto", root / "server" / "aiges" / "proto")
    (root / "server" / "__init__.py").touch()
    (root / "server" / "aiges" / "__init__.py").touch()
    objects = REPO / "build" / "native" / "obj"
    for part in ("libwrapper", "server.aiges._embed"):
        if (objects / part).is_dir():  # reused when newer than the sources (mtimes kept)
            shutil.copytree(objects / part, root / "build" / "native" / "obj" / part)
    return root


def build(root: Path, path: str, *, required: bool) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("GF_REQUIRE_NATIVE", "CXX", "PYTHONPATH")
    }
    env["PATH"] = path
    env["GF_BUILD_JOBS"] = "1"
    if required:
        env["GF_REQUIRE_NATIVE"] = "1"
    return subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def report(root: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((root / "server/aiges/native-build.json").read_text())
    return data


def tools_without_compiler(tmp_path: Path) -> str:
    """A PATH holding the build's other tools but no C++ compiler."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("pkg-config", "protoc", "grpc_cpp_plugin"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    assert shutil.which("g++", path=str(bin_dir)) is None
    return str(bin_dir)


def test_no_compiler_the_build_succeeds_and_says_once_what_is_missing(
    checkout: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tools_without_compiler(tmp_path)
    done = build(checkout, path, required=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert out.count(ONCE) == 1, out
    assert "a C++ compiler (g++)" in out and HOW in out
    status = report(checkout)
    assert status["built"] == []
    missing = status["missing"]
    assert isinstance(missing, dict)
    assert set(missing) == {"libwrapper", "server.aiges._embed", "server.aiges._native"}
    assert all("a C++ compiler (g++)" in reason for reason in missing.values())
    assert HOW in str(status["how"])
    assert not list((checkout / "server" / "aiges").rglob("*.so"))

    # the package reads that report at run time and says the same, one line per part
    monkeypatch.setattr(native, "_HERE", checkout / "server" / "aiges")
    monkeypatch.delenv(native.REQUIRE_ENV, raising=False)  # `make test` sets it
    assert native.say_missing() == 3
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert all("a C++ compiler (g++)" in line and HOW in line for line in lines)
    assert any(line.startswith("GlobalFunc: libwrapper.so") for line in lines), lines
    # the loader's C mode has no fallback, and the line says so
    (c_mode,) = [line for line in lines if line.startswith("GlobalFunc: libwrapper.so")]
    assert "the loader's C mode cannot be used until it is built" in c_mode
    assert "fallback is used" not in c_mode
    # required, no line offers a fallback
    monkeypatch.setenv(native.REQUIRE_ENV, "1")
    assert native.say_missing() == 3
    lines = capsys.readouterr().err.splitlines()
    assert all("required by GF_REQUIRE_NATIVE=1" in line for line in lines), lines
    assert not any("instead" in line for line in lines), lines
    monkeypatch.delenv(native.REQUIRE_ENV)

    failed = build(checkout, path, required=True)
    assert failed.returncode != 0
    assert "GF_REQUIRE_NATIVE=1 and native parts are missing: libwrapper: missing: a C++ " in (
        failed.stderr
    ), failed.stderr
    assert ONCE not in failed.stderr and "fall back" not in failed.stderr, failed.stderr


def test_no_grpc_library_builds_the_other_parts(checkout: Path, tmp_path: Path) -> None:
    # A pkg-config that knows no module: the grpc++ server lacks its libraries, the
    # other two parts do not need them and are built (linked from the reused objects).
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "pkg-config").write_text("#!/bin/sh\nexit 1\n")
    (fake / "pkg-config").chmod(0o755)
    path = f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"
    done = build(checkout, path, required=False)
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).count(ONCE) == 1
    status = report(checkout)
    assert status["built"] == ["libwrapper", "server.aiges._embed"]
    assert status["missing"] == {"server.aiges._native": "missing: libgrpc++-dev, libprotobuf-dev"}
    assert (checkout / "server" / "aiges" / "lib" / "libwrapper.so").is_file()
    assert list((checkout / "server" / "aiges").glob("_embed*.so"))
    assert not list((checkout / "server" / "aiges").glob("_native*.so"))

    failed = build(checkout, path, required=True)
    assert failed.returncode != 0
    assert (
        "GF_REQUIRE_NATIVE=1 and native parts are missing: server.aiges._native: missing: "
        "libgrpc++-dev" in failed.stderr
    ), failed.stderr


def other_venv(tmp_path: Path) -> Path:
    """A second venv over the same interpreter and site-packages, at another path.

    ``sys.executable`` differs (as after recreating ``.venv`` elsewhere or with another
    Python), everything else is this venv's, so the build can run without a new install.
    """
    here = Path(sys.prefix)
    venv = tmp_path / "venv2"
    (venv / "bin").mkdir(parents=True)
    shutil.copy2(here / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "lib").symlink_to(here / "lib")
    python = venv / "bin" / "python"
    python.symlink_to(Path(sys.executable).resolve())
    return python


def build_with(root: Path, python: Path | str, path: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("GF_REQUIRE_NATIVE", "CXX", "PYTHONPATH")
    }
    env["PATH"] = path
    env["GF_BUILD_JOBS"] = "2"
    return subprocess.run(
        [str(python), "setup.py", "-q", "build_ext", "--inplace"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_another_python_gets_its_own_objects_and_link(checkout: Path, tmp_path: Path) -> None:
    # A checkout installed into one venv, then into another: the second must not reuse the
    # first one's objects or its linked libwrapper.so (which names the first Python).
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "pkg-config").write_text("#!/bin/sh\nexit 1\n")  # skip the slow grpc++ part
    (fake / "pkg-config").chmod(0o755)
    path = f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"
    lib = checkout / "server" / "aiges" / "lib" / "libwrapper.so"

    first = build_with(checkout, sys.executable, path)
    assert first.returncode == 0, first.stderr
    assert sys.executable.encode() in lib.read_bytes()

    python = other_venv(tmp_path)
    probe = subprocess.run(
        [str(python), "-c", "import sys, pybind11; print(sys.executable)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == str(python)
    second = build_with(checkout, python, path)
    assert second.returncode == 0, second.stderr
    assert "native: compiling libwrapper.cc" in second.stdout, second.stdout
    assert "native: compiling embed.cc" in second.stdout, second.stdout
    assert str(python).encode() in lib.read_bytes()
    assert report(checkout)["built"] == ["libwrapper", "server.aiges._embed"]

    # back to the first Python: its objects are still cached (no compile) but the library
    # is relinked from them, since the last link was the other Python's
    third = build_with(checkout, sys.executable, path)
    assert third.returncode == 0, third.stderr
    assert "native: compiling" not in third.stdout, third.stdout
    assert "native: linking libwrapper.so" in third.stdout, third.stdout
    data = lib.read_bytes()
    assert sys.executable.encode() in data and str(python).encode() not in data


def test_pybind11_at_another_path_reuses_the_objects(checkout: Path, tmp_path: Path) -> None:
    # pip's default (isolated) install puts pybind11 in a new /tmp/pip-build-env-* folder each
    # time; the key used to hash that path, so every install recompiled every part and left
    # one more key folder behind. Same version and headers at another path: nothing compiles.
    import pybind11

    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "pkg-config").write_text("#!/bin/sh\nexit 1\n")  # skip the slow grpc++ part
    (fake / "pkg-config").chmod(0o755)
    path = f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"
    package = Path(pybind11.__file__).parent
    builds = []
    for name in ("env-a", "env-b"):
        shutil.copytree(package, tmp_path / name / "pybind11")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("GF_REQUIRE_NATIVE", "CXX", "PYTHONPATH")
        }
        env.update(PATH=path, GF_BUILD_JOBS="2", PYTHONPATH=str(tmp_path / name))
        done = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stderr
        builds.append(done.stdout)
    probe = subprocess.run(
        [sys.executable, "-c", "import pybind11; print(pybind11.get_include())"],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "env-b")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip().startswith(str(tmp_path / "env-b"))  # really another path
    assert "native: compiling" not in builds[1], builds[1]
    assert report(checkout)["built"] == ["libwrapper", "server.aiges._embed"]
    objects = checkout / "build" / "native" / "obj"
    for part in ("libwrapper", "server.aiges._embed"):
        assert len([f for f in (objects / part).iterdir() if f.is_dir()]) <= 3


def test_old_key_folders_are_pruned_keeping_the_newest(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gf_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_module = importlib.util.module_from_spec(spec)
    # setup.py calls setup() at import only under __main__-like use; load its functions
    source = (REPO / "setup.py").read_text().split("\nsetup(")[0]
    exec(compile(source, str(REPO / "setup.py"), "exec"), setup_module.__dict__)
    part = tmp_path / "libwrapper"
    for i in range(6):
        folder = part / f"key{i}"
        folder.mkdir(parents=True)
        os.utime(folder, (1000 + i, 1000 + i))
    current = part / "key0"  # the oldest by mtime, but the one in use
    removed = setup_module.prune_keys(part, current)
    assert sorted(f.name for f in part.iterdir()) == ["key0", "key4", "key5"]
    assert sorted(f.name for f in removed) == ["key1", "key2", "key3"]
