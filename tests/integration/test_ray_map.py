"""Ray maps of registry functions on a real local Ray (started once for this session).

A map of 200 items with one failing keeps the other 199, in input order; a per-task
resource request is honoured (a custom resource the cluster holds one of runs the tasks
one at a time); ``gf map`` writes one line per input line, errors included, on the same
Ray cluster through ``--ray-address``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from globalfunc import distributed
from globalfunc.errors import ExecutionError, FunctionNotFound, InvalidRequest
from tests.integration.serve_support import REPO, clean_env, make_repo

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray", reason="pip install 'globalfunc[ray]' (make test installs it)")

SCALE_FUNCS = REPO / "tests" / "data" / "scale"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray for every test here: 2 CPUs and one 'slot' (a custom resource)."""
    ray.init(num_cpus=2, resources={"slot": 1}, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from gfbase import GFBase

    root = make_repo(tmp_path_factory.mktemp("raymap") / "packages", SCALE_FUNCS)
    gfb = GFBase(root)
    gfb.save_all()
    try:
        yield gfb
    finally:
        gfb.close()


def test_200_items_one_failing_keeps_the_other_199_in_order(cluster: str, packages: Any) -> None:
    items = [{"x": i, "bad": 137} for i in range(200)]
    results = distributed.map(
        "Logged.double_or_fail", items, registry=packages.registry, progress=False
    )
    assert len(results) == 200
    failed = results[137]
    assert isinstance(failed, ExecutionError) and isinstance(failed, ValueError)
    assert "x is 137, the input chosen to fail" in str(failed)
    assert [r for i, r in enumerate(results) if i != 137] == [2 * i for i in range(200) if i != 137]
    # batched tasks give the same answer
    again = distributed.map(
        "Logged.double_or_fail", items, registry=packages.registry, batch=32, progress=False
    )
    assert [type(r) for r in again] == [type(r) for r in results]
    assert again[:137] == results[:137] and again[138:] == results[138:]


def test_bad_arguments_and_names(cluster: str, packages: Any) -> None:
    results = distributed.map(
        "Logged.double_or_fail",
        [{"x": "seven"}, {"x": 1}],
        registry=packages.registry,
        progress=False,
    )
    assert isinstance(results[0], TypeError) and "x" in str(results[0])  # BadArguments
    assert results[1] == 2
    with pytest.raises(FunctionNotFound):
        distributed.map("Logged.nope", [{}], registry=packages.registry, progress=False)
    with pytest.raises(InvalidRequest, match="must be a number"):
        distributed.map(
            "Logged.double_or_fail",
            [{"x": 1}],
            registry=packages.registry,
            resources={"GPU": -1},
        )


def test_resources_are_honoured(cluster: str, packages: Any, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    items = [{"seq": i, "path": str(log), "seconds": 0.4} for i in range(4)]
    started = time.monotonic()
    results = distributed.map(
        "Logged.logged",
        items,
        registry=packages.registry,
        resources={"slot": 1, "CPU": 0.5, "memory": 50 * 2**20},
        progress=False,
    )
    elapsed = time.monotonic() - started
    assert results == [0, 1, 2, 3]
    assert elapsed >= 4 * 0.4  # one 'slot' in the cluster: one task at a time
    assert distributed.ray_options({"CPU": 2, "GPU": 0.5, "memory": 1.5e9, "slot": 1}) == {
        "num_cpus": 2,
        "num_gpus": 0.5,
        "memory": 1_500_000_000,
        "resources": {"slot": 1},
    }


def test_gf_map_writes_every_line_in_order(cluster: str, packages: Any, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    target = tmp_path / "out.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"x": i, "bad": 3}) + b"\n" for i in range(20)))
    argv = ["--root", str(packages.project_path), "map", "Logged.double_or_fail"]
    argv += ["--input", str(source), "--output", str(target), "--ray-address", cluster]
    done = subprocess.run(
        [sys.executable, "-m", "globalfunc.cli", *argv, "--batch", "4"],
        env=clean_env(),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "20 items, 1 failed" in done.stdout
    lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert len(lines) == 20
    assert lines[3]["error"] == "ExecutionError" and "chosen to fail" in lines[3]["message"]
    assert [line["result"] for i, line in enumerate(lines) if i != 3] == [
        2 * i for i in range(20) if i != 3
    ]
