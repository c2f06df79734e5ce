"""Build GlobalFunc's native parts with the package (``pip install .`` / ``-e .``).

Three parts, each optional (the package works without them; the first two have pure-Python /
grpcio fallbacks, libwrapper.so has none: without it the loader's C mode cannot be used):

``server.aiges._embed``      aiges_embed in C++ (pybind11): the AIGES data classes and the
                             zero-copy request ``Buffer``;
``server.aiges._native``     the AIGES plugin's grpc++ server (pybind11, grpc++/protobuf);
``server/aiges/lib/libwrapper.so``  the loader's C mode (embeds CPython; links libpython).

A part whose compiler, headers or libraries are missing is skipped, and the build says once
what is missing and how to get it (``scripts/system-deps.sh`` installs everything). The
outcome is written to ``server/aiges/native-build.json``, which the package reads at run time
to say the same. ``GF_REQUIRE_NATIVE=1`` makes a part that cannot be built fail the install.
Compiles run at most ``GF_BUILD_JOBS`` (default 2) at a time; objects are kept under
``build/native/obj/<part>/<key>``, where the key is a hash of everything that makes an object
fit one install and not another (the compiler and its version, the flags, include dirs and
pkg-config flags, pybind11's version and a hash of its headers (not its folder, which pip's
isolated build makes anew each time), the link arguments, ``sys.executable`` and the Python
version; the 3 most recently used keys per part are kept, older ones removed): a
rebuild recompiles only what changed, and a checkout installed into two venvs (say Python
3.11 and 3.12) never hands one the other's objects. A part is relinked when its key differs
from the one it was last linked with (a stamp per target under ``build/native/link``). The
checkout's own folder is left out of the key (headers are checked by mtime), so a copy of the
checkout reuses the objects.

Not here: the package metadata (pyproject.toml) and the benchmark client (native/Makefile).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
NATIVE = ROOT / "native" / "aiges"
PROTO_DIR = ROOT / "server" / "aiges" / "proto"
CACHE = ROOT / "build" / "native"
STATUS_FILE = Path("server") / "aiges" / "native-build.json"
HOW = "run scripts/system-deps.sh (as root), then reinstall"
CXXFLAGS = ["-O2", "-g0", "-std=c++17", "-fvisibility=hidden", "-Wno-unused-parameter"]


def _required() -> bool:
    return os.environ.get("GF_REQUIRE_NATIVE", "") not in ("", "0", "false", "no")


def _pkg_config(*args: str) -> list[str]:
    out = subprocess.run(["pkg-config", *args], capture_output=True, text=True, check=True).stdout
    return out.split()


def _pybind11_include() -> str:
    import pybind11

    return pybind11.get_include()


def _compiler_version(compiler: str) -> str:
    """The compiler's ``--version`` banner ('' when it cannot be run)."""
    try:
        return subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _pybind11_identity(include: str) -> str:
    """pybind11's version and a hash of its headers: what its include folder stands for.

    pip's default isolated build installs pybind11 under a new random /tmp/pip-build-env-*
    folder each time; keying on that path recompiled everything at every install.
    """
    import pybind11

    digest = hashlib.sha256()
    folder = Path(include)
    for header in sorted(folder.rglob("*.h")):
        digest.update(str(header.relative_to(folder)).encode() + b"\0")
        digest.update(header.read_bytes())
    return f"{pybind11.__version__}:{digest.hexdigest()[:16]}"


def build_key(compiler: str, flags: list[str], link_args: list[str]) -> str:
    """A hash of every input that makes an object or a link fit only one install."""
    here = str(ROOT)
    with contextlib.suppress(ImportError):
        include = _pybind11_include()
        named = f"-I<pybind11 {_pybind11_identity(include)}>"
        flags = [named if f == f"-I{include}" else f for f in flags]
    inputs = {
        "compiler": compiler,
        "compiler_path": shutil.which(compiler) or compiler,
        "compiler_version": _compiler_version(compiler),
        "flags": [f.replace(here, "<checkout>") for f in flags],
        "link": [a.replace(here, "<checkout>") for a in link_args],
        "python": sys.executable,
        "python_version": sys.version,
        "abiflags": sys.abiflags,
        "soabi": sysconfig.get_config_var("SOABI") or "",
    }
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


KEEP_KEYS = 3
"""Object folders kept per part (the newest used); older keys are removed after a build."""


def prune_keys(part_folder: Path, current: Path, keep: int = KEEP_KEYS) -> list[Path]:
    """Remove all but the ``keep`` most recently used key folders of one part."""
    current.mkdir(parents=True, exist_ok=True)
    os.utime(current)  # in use now: the newest
    folders = [f for f in part_folder.iterdir() if f.is_dir()]
    folders.sort(key=lambda f: (f == current, f.stat().st_mtime), reverse=True)
    removed = []
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def _newer(source: Path, target: Path) -> bool:
    return not target.exists() or source.stat().st_mtime > target.stat().st_mtime


class SharedLibrary(Extension):
    """A plain shared library (not a Python module) at ``filename`` inside the package."""

    def __init__(self, name: str, filename: str, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.filename = filename


class BuildNative(build_ext):
    """build_ext that checks each part's needs first and skips (or, required, fails) it."""

    def initialize_options(self) -> None:
        super().initialize_options()
        self.outcome: dict[str, str] = {}

    def finalize_options(self) -> None:
        super().finalize_options()
        self.build_temp = str(CACHE)

    def get_ext_filename(self, fullname: str) -> str:
        for ext in self.extensions:
            if isinstance(ext, SharedLibrary) and ext.name == fullname:
                return ext.filename
        return super().get_ext_filename(fullname)

    def _get_inplace_equivalent(self, build_py: object, ext: Extension) -> tuple[str, str]:
        # setuptools puts an in-place file beside its package; the library has its own folder.
        if isinstance(ext, SharedLibrary):
            os.makedirs(os.path.dirname(ext.filename), exist_ok=True)
            return ext.filename, os.path.join(self.build_lib, ext.filename)
        return super()._get_inplace_equivalent(build_py, ext)  # type: ignore[misc]

    def copy_file(
        self, infile: str, outfile: str, *args: object, **kwargs: object
    ) -> tuple[str, int]:  # type: ignore[override]
        # Replace, never overwrite in place: a running process may have the old file mapped.
        if os.path.isdir(outfile):
            outfile = os.path.join(outfile, os.path.basename(infile))
        tmp = f"{outfile}.{os.getpid()}.tmp"
        shutil.copy2(infile, tmp)
        os.replace(tmp, outfile)
        return outfile, 1

    def run(self) -> None:
        missing = self._missing()
        wanted = []
        for ext in self.extensions:
            lack = missing.get(ext.name, [])
            if lack:
                self.outcome[ext.name] = "missing: " + ", ".join(lack)
            else:
                wanted.append(ext)
        if any(e.name == "server.aiges._native" for e in wanted):
            try:
                self._generate_protos()
            except (OSError, subprocess.CalledProcessError) as exc:
                self.outcome["server.aiges._native"] = f"protoc failed: {exc}"
                wanted = [e for e in wanted if e.name != "server.aiges._native"]
        self.extensions = wanted
        self._configure()
        try:
            super().run()
        finally:
            self._report()

    def build_extension(self, ext: Extension) -> None:
        if sys.platform == "darwin":
            raise RuntimeError("native parts are built on Linux only")
        try:
            self._compile_and_link(ext)
        except Exception as exc:  # a compiler or linker error: this part is skipped
            self.outcome[ext.name] = (
                f"build failed: {str(exc).splitlines()[-1] if str(exc) else exc}"
            )
            if _required():
                raise
            return
        self.outcome[ext.name] = "built"

    # -- checks ------------------------------------------------------------------------
    def _missing(self) -> dict[str, list[str]]:
        """What each part lacks, as the packages to install (Debian names)."""
        common: list[str] = []
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            common.append("a C++ compiler (g++)")
        include = sysconfig.get_paths()["include"]
        if not (Path(include) / "Python.h").exists():
            common.append(f"the Python headers (python3-dev; no Python.h in {include})")
        try:
            _pybind11_include()
        except ImportError:
            common.append("pybind11 (pip install pybind11)")
        grpc: list[str] = []
        if shutil.which("pkg-config") is None:
            grpc.append("pkg-config")
        else:
            for module, package in (("grpc++", "libgrpc++-dev"), ("protobuf", "libprotobuf-dev")):
                if subprocess.run(["pkg-config", "--exists", module]).returncode != 0:
                    grpc.append(package)
        if shutil.which("protoc") is None:
            grpc.append("protobuf-compiler")
        if shutil.which("grpc_cpp_plugin") is None:
            grpc.append("protobuf-compiler-grpc")
        embed: list[str] = []
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        ldlibrary = sysconfig.get_config_var("LDLIBRARY") or ""
        if (
            not sysconfig.get_config_var("Py_ENABLE_SHARED")
            or not (Path(libdir) / ldlibrary).exists()
        ):
            embed.append(f"a shared libpython (libpython{sysconfig.get_python_version()}.so)")
        return {
            "server.aiges._embed": common,
            "server.aiges._native": common + grpc,
            "libwrapper": common + embed,
        }

    def _generate_protos(self) -> None:
        gen = CACHE / "gen"
        gen.mkdir(parents=True, exist_ok=True)
        plugin = shutil.which("grpc_cpp_plugin")
        for name in ("aiges", "plugin"):
            proto = PROTO_DIR / f"{name}.proto"
            if _newer(proto, gen / f"{name}.grpc.pb.cc"):
                subprocess.run(
                    [
                        "protoc",
                        f"-I{PROTO_DIR}",
                        f"--cpp_out={gen}",
                        f"--grpc_out={gen}",
                        f"--plugin=protoc-gen-grpc={plugin}",
                        str(proto),
                    ],
                    check=True,
                )

    def _configure(self) -> None:
        py_include = [sysconfig.get_paths()["include"]]
        for ext in self.extensions:
            ext.language = "c++"
            ext.extra_compile_args = list(CXXFLAGS)
            ext.gf_sources = [str(ROOT / source) for source in ext.sources]  # type: ignore[attr-defined]
            ext.include_dirs = [str(NATIVE), *py_include]
            with contextlib.suppress(ImportError):
                ext.include_dirs.append(_pybind11_include())
            if ext.name == "server.aiges._native":
                gen = CACHE / "gen"
                ext.gf_sources = [  # type: ignore[attr-defined]
                    str(NATIVE / "plugin_server.cc"),
                    *(
                        str(gen / f"{n}{s}")
                        for n in ("aiges", "plugin")
                        for s in (".pb.cc", ".grpc.pb.cc")
                    ),
                ]
                ext.include_dirs.append(str(gen))
                ext.extra_compile_args += _pkg_config("--cflags", "grpc++", "protobuf")
                ext.extra_link_args = _pkg_config("--libs", "grpc++", "protobuf")
            if isinstance(ext, SharedLibrary):
                libdir = sysconfig.get_config_var("LIBDIR")
                version = sysconfig.get_python_version()
                ext.define_macros = [
                    ("GF_PYTHON_EXECUTABLE", json.dumps(sys.executable)),
                    ("GF_VERSION", json.dumps(self.distribution.get_version())),
                ]
                ext.extra_link_args = [
                    f"-L{libdir}",
                    f"-Wl,-rpath,{libdir}",
                    f"-lpython{version}{sys.abiflags}",
                    "-ldl",
                    "-lpthread",
                ]

    # -- building ----------------------------------------------------------------------
    def _compile_and_link(self, ext: Extension) -> None:
        """Compile (GF_BUILD_JOBS at a time, unchanged objects reused) and link ``ext``."""
        target = Path(self.get_ext_fullpath(ext.name))
        compiler = os.environ.get("CXX", "g++")
        flags = [
            "-fPIC",
            *ext.extra_compile_args,
            *(f"-I{i}" for i in ext.include_dirs),
            *(f"-D{k}={v}" for k, v in ext.define_macros),
        ]
        link_args = list(ext.extra_link_args)
        key = build_key(compiler, flags, link_args)
        folder = CACHE / "obj" / ext.name / key
        objects: list[str] = []
        todo: list[tuple[str, str]] = []
        for source in ext.gf_sources:  # type: ignore[attr-defined]
            obj = folder / (Path(source).name + ".o")
            objects.append(str(obj))
            headers = [*NATIVE.glob("*.h"), Path(source)]
            if not obj.exists() or any(h.stat().st_mtime > obj.stat().st_mtime for h in headers):
                todo.append((source, str(obj)))

        def compile_one(job: tuple[str, str]) -> None:
            source, obj = job
            Path(obj).parent.mkdir(parents=True, exist_ok=True)
            print(f"native: compiling {Path(source).name} ({key})", flush=True)
            subprocess.run([compiler, *flags, "-c", source, "-o", obj + ".tmp"], check=True)
            os.replace(obj + ".tmp", obj)

        jobs = max(1, int(os.environ.get("GF_BUILD_JOBS", "2")))
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(compile_one, todo))
        prune_keys(folder.parent, folder)
        # The target may have been linked by another install from other objects.
        where = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
        stamp = CACHE / "link" / f"{where}.buildkey"
        linked_with = stamp.read_text().strip() if stamp.exists() else ""
        stale = any(_newer(Path(o), target) for o in objects)
        if todo or stale or not target.exists() or linked_with != key:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            print(f"native: linking {target.name} ({key})", flush=True)
            subprocess.run(
                [compiler, "-shared", "-o", str(tmp), *objects, *link_args],
                check=True,
            )
            os.replace(tmp, target)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(key + "\n")

    def _report(self) -> None:
        status = {
            "built": sorted(k for k, v in self.outcome.items() if v == "built"),
            "missing": {k: v for k, v in sorted(self.outcome.items()) if v != "built"},
            "how": HOW,
        }
        for base in {Path(self.build_lib), ROOT}:
            out = base / STATUS_FILE
            if out.parent.is_dir():
                out.write_text(json.dumps(status, indent=1) + "\n")
        if status["missing"]:
            lines = "; ".join(f"{k}: {v}" for k, v in status["missing"].items())
            if _required():
                raise SystemExit(
                    f"GF_REQUIRE_NATIVE=1 and native parts are missing: {lines}. "
                    f"To build them: {HOW}."
                )
            without = []
            if "libwrapper" in status["missing"]:
                without.append("the loader's C mode (libwrapper.so) cannot be used until built")
            if set(status["missing"]) - {"libwrapper"}:
                without.append("the others fall back to pure Python / grpcio")
            print(
                f"GlobalFunc: native parts NOT built ({lines}); {'; '.join(without)}. "
                f"To build them: {HOW}.",
                file=sys.stderr,
                flush=True,
            )


setup(
    ext_modules=[
        Extension("server.aiges._embed", sources=["native/aiges/embed.cc"], optional=True),
        Extension("server.aiges._native", sources=["native/aiges/plugin_server.cc"], optional=True),
        SharedLibrary(
            "libwrapper",
            filename=str(Path("server") / "aiges" / "lib" / "libwrapper.so"),
            sources=["native/aiges/libwrapper.cc"],
            optional=True,
        ),
    ],
    cmdclass={"build_ext": BuildNative},
)
