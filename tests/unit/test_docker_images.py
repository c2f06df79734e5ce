"""docker/: what the images are built from, checked without building them.

The Dockerfiles name no architecture and no ABI-tagged module (they build on any machine);
the build context's ``.dockerignore`` keeps this machine's build outputs (native parts
built for the local Python, registry state, the virtualenv) out of the images while every
tracked file the Dockerfiles COPY stays in; only the AIGES image builds the native parts,
and it requires them. Building the images themselves is ``make images`` (podman, root,
minutes; docker/check-images.sh), not part of the test suite.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*Dockerfile"))


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex on a relative path."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is left out when it or one of its parent folders matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    regexes = [pattern_regex(p) for p in patterns if not p.startswith("!")]
    return any(r.match(prefix) for r in regexes for prefix in prefixes)


def copied_sources() -> set[str]:
    """The context paths the Dockerfiles COPY (not --from another stage)."""
    sources: set[str] = set()
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
                continue
            sources.update(w for w in words[1:-1] if not w.startswith("--"))
    return sources


@pytest.mark.parametrize("dockerfile", [p.name for p in DOCKERFILES])
def test_no_architecture_or_abi_tagged_module_is_named(dockerfile: str) -> None:
    lines = (DOCKER / dockerfile).read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    named = re.findall(r"x86_64|amd64|aarch64|arm64|i686|cpython-3\d+-|\.so\b", text)
    assert named == [], f"{dockerfile} names {named}: images must build on any architecture"


@pytest.mark.parametrize(
    "path",
    [
        "server/aiges/_native.cpython-311-x86_64-linux-gnu.so",
        "server/aiges/_embed.cpython-311-aarch64-linux-gnu.so",
        "server/aiges/lib/libwrapper.so",
        "server/aiges/native-build.json",
        "packages/.globalfunc/registry.sqlite3",
        "packages/Base/__pycache__/to_pickle.cpython-311.pyc",
        "build/native/obj/server.aiges._native/plugin_server.cc.o",
        "native/build/bench_client",
        ".venv/bin/python",
        ".git/HEAD",
        "globalfunc.egg-info/PKG-INFO",
    ],
)
def test_the_build_machines_outputs_stay_out_of_the_context(path: str) -> None:
    assert ignored(path, ignore_patterns()), f"{path} would be sent to the image build"


def test_every_tracked_file_the_dockerfiles_copy_is_sent() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    patterns = ignore_patterns()
    sources = copied_sources()
    assert {"setup.py", "native", "server", "packages", "docker/healthcheck.py"} <= sources
    wanted = [
        f for f in tracked if any(f == s or f.startswith(s.rstrip("/") + "/") for s in sources)
    ]
    assert any(f.startswith("native/aiges/") and f.endswith(".cc") for f in wanted)
    left_out = [f for f in wanted if ignored(f, patterns)]
    assert left_out == [], f".dockerignore leaves out files the images need: {left_out[:5]}"


def test_the_matcher_can_tell_both_ways() -> None:
    assert ignored("a/b/c.so", ["**/*.so"]) and ignored("c.so", ["**/*.so"])
    assert ignored("build/x/y.o", ["build"]) and not ignored("rebuild/x", ["build"])
    assert not ignored("native/aiges/embed.cc", ["**/*.so", "native/build"])


def test_only_the_aiges_image_builds_the_native_parts_and_requires_them() -> None:
    for dockerfile in DOCKERFILES:
        stages = re.split(r"^FROM ", dockerfile.read_text(), flags=re.M)[1:]
        copies_setup = [
            any(line.startswith("COPY ") and "setup.py" in line for line in stage.splitlines())
            for stage in stages
        ]
        if dockerfile.name == "aiges.Dockerfile":
            assert len(stages) == 2 and copies_setup == [True, False]
            assert "GF_REQUIRE_NATIVE=1" in stages[0] and "COPY native ./native" in stages[0]
            assert "pip install --no-cache-dir /wheels/" in stages[1]
        else:
            assert not any(copies_setup), f"{dockerfile.name} copies setup.py but has no compiler"
