"""Ray maps of registry functions on a real local Ray (started once for this session).

A map of 200 items with one failing keeps the other 199, in input order; a per-task
resource request is honoured (a custom resource the cluster holds one of runs the tasks
one at a time); ``gf map`` writes one line per input line, errors included, on the same
Ray cluster through ``--ray-address``.

Faults, each confined to its item: a result of a class only the function's module
defines, or a NaN (encoded on the Ray worker, an error in its place); an item that exits
its process (its batch re-run item by item, Ray's own retries off, so it runs exactly
twice); an item that hangs (stopped at ``timeout``); a resource no node has (refused
before anything is sent); Ctrl-C on a hung ``gf map`` (stops at once, the finished
prefix kept in ``OUT.partial``, ``--resume`` finishes it); outputs that would destroy
the input or cannot be written (refused before Ray); an empty input (no Ray at all).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from globalfunc import distributed
from globalfunc.errors import (
    ExecutionError,
    ExecutionTimeout,
    FunctionNotFound,
    InvalidRequest,
    ResultNotFinite,
    ResultNotSerializable,
    WorkerCrashed,
)
from tests.integration.serve_support import REPO, clean_env, make_repo

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray", reason="pip install 'globalfunc[ray]' (make test installs it)")

SCALE_FUNCS = REPO / "tests" / "data" / "scale"
ODD_FUNCS = REPO / "tests" / "data" / "raymap" / "Odd"


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

    source = tmp_path_factory.mktemp("raymap-src") / "packages"
    shutil.copytree(SCALE_FUNCS, source)
    shutil.copytree(ODD_FUNCS, source / "Odd")
    root = make_repo(tmp_path_factory.mktemp("raymap") / "packages", source)
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


def gf_map(packages: Any, cluster: str | None, *args: str, timeout: float = 120) -> Any:
    argv = [sys.executable, "-m", "globalfunc.cli", "--root", str(packages.project_path)]
    argv += ["map", *args, "--quiet"]
    if cluster is not None:
        argv += ["--ray-address", cluster]
    return subprocess.run(
        argv, env=clean_env(), cwd=str(REPO), capture_output=True, text=True, timeout=timeout
    )


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


def test_results_json_cannot_carry_are_errors_in_their_place(
    cluster: str, packages: Any, tmp_path: Path
) -> None:
    kinds = ["set", "obj", "nan", "set", "plain"]
    results = distributed.map(
        "Odd.weird", [{"kind": k} for k in kinds], registry=packages.registry, progress=False
    )
    assert results[0] == {1, 2} and results[3] == {1, 2} and results[4] == "plain"
    assert isinstance(results[1], ResultNotSerializable) and "Thing" in str(results[1])
    assert isinstance(results[2], ResultNotFinite) and "NaN" in str(results[2])
    # gf map: every line written, the bad ones as their errors
    source = write_jsonl(tmp_path / "in.jsonl", [{"kind": k} for k in kinds])
    done = gf_map(
        packages,
        cluster,
        "Odd.weird",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "out.jsonl"),
    )
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [line.get("error") for line in lines] == [
        None,
        "ResultNotSerializable",
        "ResultNotFinite",
        None,
        None,
    ]
    assert lines[0]["result"] == {"__gf__": "set", "items": [1, 2]}
    assert lines[4]["result"] == "plain"


def test_an_item_that_exits_its_process_fails_alone_and_runs_twice_at_most(
    cluster: str, packages: Any, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    items = [{"x": i, "bad": 7, "path": str(log)} for i in range(10)]
    results = distributed.map(
        "Odd.crashone", items, registry=packages.registry, batch=5, progress=False
    )
    assert isinstance(results[7], WorkerCrashed) and "item 7" in str(results[7])
    assert [r for i, r in enumerate(results) if i != 7] == [i for i in range(10) if i != 7]
    runs = [int(line) for line in log.read_text().split()]
    # the crashing item: once in its batch, once alone (no Ray retries)
    assert runs.count(7) == 2
    assert all(runs.count(i) == 1 for i in range(5))  # the other batch: once
    assert all(runs.count(i) <= 2 for i in range(5, 10))


def test_an_item_past_its_timeout_is_stopped_and_the_others_finish(
    cluster: str, packages: Any
) -> None:
    started = time.monotonic()
    results = distributed.map(
        "Odd.hang",
        [{"x": i, "bad": 2} for i in range(6)],
        registry=packages.registry,
        timeout=1.5,
        progress=False,
    )
    elapsed = time.monotonic() - started
    assert isinstance(results[2], ExecutionTimeout) and "1.5 s" in str(results[2])
    assert [r for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4, 5]
    assert elapsed < 30
    with pytest.raises(InvalidRequest, match="timeout"):
        distributed.map("Odd.hang", [{"x": 1}], registry=packages.registry, timeout=0)


def test_a_timed_map_after_one_whose_items_were_killed_warms_up_again(
    cluster: str, packages: Any
) -> None:
    # Both slots' worker processes are killed at the first map's timeout; the second map's
    # quick items must not wait for new ones on their clocks (a warm-up remembered past the
    # kill timed out 2-5 of 7 under load).
    hung = distributed.map(
        "Odd.hang",
        [{"x": 1, "bad": 1}, {"x": 2, "bad": 2}],
        registry=packages.registry,
        timeout=0.5,
        progress=False,
    )
    assert all(isinstance(r, ExecutionTimeout) for r in hung)
    quick = distributed.map(
        "Odd.hang",
        [{"x": i} for i in range(7)],
        registry=packages.registry,
        timeout=1.0,
        progress=False,
    )
    assert quick == list(range(7))


def test_a_resource_no_node_has_is_refused_before_sending(cluster: str, packages: Any) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match=r"GPU 1.*no node"):
        distributed.map(
            "Odd.hang",
            [{"x": 1}],
            registry=packages.registry,
            resources={"GPU": 1},
            progress=False,
        )
    with pytest.raises(InvalidRequest, match="slot 2"):
        distributed.map(
            "Odd.hang",
            [{"x": 1}],
            registry=packages.registry,
            resources={"slot": 2},
            progress=False,
        )
    assert time.monotonic() - started < 10


def test_ctrl_c_keeps_the_finished_prefix_and_resume_finishes(
    cluster: str, packages: Any, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"x": i, "bad": 5} for i in range(12)])
    target = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    argv = [sys.executable, "-m", "globalfunc.cli", "--root", str(packages.project_path)]
    argv += ["map", "Odd.hang", "--input", str(source), "--output", str(target), "--quiet"]
    argv += ["--ray-address", cluster, "--batch", "1"]
    proc = subprocess.Popen(
        argv,
        env=clean_env(),
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # items 0-4 written as they finish; 5 hangs
            if partial.exists() and partial.read_bytes().count(b"\n") >= 5:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.0)  # the others finish meanwhile; none may pass the hung item 5
        assert partial.read_bytes().count(b"\n") == 5
        interrupted = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - interrupted < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "first 5 of 12 results" in stderr and "--resume" in stderr
    assert not target.exists()
    kept = [orjson.loads(line) for line in partial.read_bytes().splitlines()]
    assert kept == [{"result": i} for i in range(5)]
    # a torn last line (a kill mid-write) is cut off; the rest is kept
    with open(partial, "ab") as f:
        f.write(b'{"resu')
    done = gf_map(
        packages,
        cluster,
        "Odd.hang",
        "--input",
        str(source),
        "--output",
        str(target),
        "--resume",
        "--timeout",
        "2",  # quick items fit: the new job's Ray workers are started before the clocks run
    )
    assert done.returncode == 0, done.stderr
    assert "12 items, 1 failed" in done.stdout, target.read_text()
    assert not partial.exists()
    lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert lines[5]["error"] == "ExecutionTimeout"
    assert [line.get("result") for i, line in enumerate(lines) if i != 5] == [
        i for i in range(12) if i != 5
    ]


def test_outputs_that_would_destroy_the_input_or_cannot_be_written(
    packages: Any, tmp_path: Path
) -> None:
    # no cluster here: each is refused before Ray, so an address nothing listens on is
    # never contacted
    nowhere = "127.0.0.1:9"
    source = write_jsonl(tmp_path / "in.jsonl", [{"x": 1}])
    original = source.read_bytes()
    link = tmp_path / "link.jsonl"
    os.link(source, link)
    for output, says in [
        (source, "is the input file"),
        (link, "is the input file"),
        (tmp_path / "missing" / "out.jsonl", "does not exist"),
        (tmp_path, "is a folder"),
    ]:
        done = gf_map(
            packages, nowhere, "Odd.hang", "--input", str(source), "--output", str(output)
        )
        assert done.returncode == 1 and says in done.stderr, done.stderr
        assert source.read_bytes() == original
    done = gf_map(
        packages, nowhere, "Odd.nope", "--input", str(source), "--output", str(tmp_path / "o")
    )
    assert done.returncode == 1 and "Odd.nope" in done.stderr, done.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    done = gf_map(
        packages,
        nowhere,
        "Odd.hang",
        "--input",
        str(empty),
        "--output",
        str(tmp_path / "empty-out.jsonl"),
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "empty-out.jsonl").read_bytes() == b""
    assert "0 items, 0 failed" in done.stdout
