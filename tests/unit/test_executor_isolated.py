"""The isolated worker pool: deadlines, crashes, the memory cap, replacement, concurrency.

These start real worker processes (a few hundred ms each), hence the integration marker.
Waits are bounded and generous; nothing depends on how fast this machine is, except that
a timeout of 1 s must fire before a function that sleeps for an hour returns.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from globalfunc.errors import (
    BadArguments,
    ConfigError,
    ExecutionError,
    ExecutionTimeout,
    FunctionNotFound,
    Interrupted,
    Overloaded,
    ResultNotSerializable,
    WorkerCrashed,
)
from globalfunc.executor import IsolatedExecutor, WorkerTarget
from globalfunc.registry import Registry
from globalfunc.scan import Scanner

pytestmark = pytest.mark.integration

FUNCS = Path(__file__).resolve().parents[1] / "data" / "funcs"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedExecutor]:
    cache = tmp_path_factory.mktemp("cache")
    ex = IsolatedExecutor(
        WorkerTarget(packages_dir=str(FUNCS), cache_dir=str(cache)),
        workers=2,
        timeout=20.0,
        timeouts={"Misbehave.hang": 1.0},
        memory_limit_mb=400,
    )
    yield ex
    ex.close()


def _settle(pool: IsolatedExecutor, timeout: float = 30.0) -> dict[str, int]:
    """Wait until replacements have started (they start in the background) and return stats."""
    deadline = time.monotonic() + timeout
    stats = pool.stats()
    while (stats["starting"] or stats["ready"] < pool.size) and time.monotonic() < deadline:
        time.sleep(0.02)
        stats = pool.stats()
    return stats


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_results_and_errors_cross_the_process_boundary(pool: IsolatedExecutor) -> None:
    assert pool.call("Codec.echo", kwargs={"value": {"a": (1, b"x")}}) == {"a": (1, b"x")}
    assert pool.call("Codec.type_name", kwargs={"value": b"\x00"}) == "bytes"
    with pytest.raises(ExecutionError) as info:
        pool.call("Misbehave.raise_error", kwargs={"message": "far away"})
    assert info.value.details["exc_type"] == "ValueError"
    assert info.value.details["exc_message"] == "far away"
    assert "traceback" not in info.value.details
    with pytest.raises(BadArguments, match=r"Codec\.positional\(a, b, /"):
        pool.call("Codec.positional", kwargs={"a": 1})
    with pytest.raises(FunctionNotFound):
        pool.call("Codec.nothing_here")
    with pytest.raises(ResultNotSerializable, match="generator"):
        pool.call("Misbehave.unserializable")


def test_prints_do_not_corrupt_the_protocol(pool: IsolatedExecutor) -> None:
    assert pool.call("Misbehave.noisy", kwargs={"value": 41}) == 41
    assert pool.call("Codec.echo", kwargs={"value": 1}) == 1


def test_per_function_timeout_kills_and_replaces_the_worker(pool: IsolatedExecutor) -> None:
    before = set(pool.pids())
    replaced = pool.stats()["replaced"]
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        pool.call("Misbehave.hang")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 15, elapsed
    assert info.value.http_status == 504
    assert _settle(pool)["replaced"] == replaced + 1
    gone = before - set(pool.pids())
    assert len(gone) == 1
    assert not _alive(gone.pop())
    assert pool.call("Codec.echo", kwargs={"value": "after"}) == "after"


def test_explicit_timeout_overrides_the_default(pool: IsolatedExecutor) -> None:
    with pytest.raises(ExecutionTimeout, match=r"Misbehave\.hang"):
        pool.call("Misbehave.hang", kwargs={"seconds": 60}, timeout=0.5)


@pytest.mark.parametrize(
    ("name", "how"),
    [("Misbehave.exit_now", "exited with code 3"), ("Misbehave.segfault", "SIGSEGV")],
)
def test_a_dying_worker_is_replaced(pool: IsolatedExecutor, name: str, how: str) -> None:
    replaced = pool.stats()["replaced"]
    with pytest.raises(WorkerCrashed) as info:
        pool.call(name)
    assert how in str(info.value)
    assert info.value.http_status == 500
    stats = _settle(pool)
    assert (stats["workers"], stats["busy"], stats["replaced"]) == (2, 0, replaced + 1)
    assert pool.call("Codec.echo", kwargs={"value": 2}) == 2


def test_memory_cap_stops_the_hog(pool: IsolatedExecutor) -> None:
    replaced = pool.stats()["replaced"]
    with pytest.raises(WorkerCrashed, match="memory cap of 400 MiB"):
        pool.call("Misbehave.hog_memory", kwargs={"step_mb": 32})
    assert pool.stats()["replaced"] == replaced + 1
    assert pool.call("Misbehave.hog_memory", kwargs={"step_mb": 8, "limit_mb": 16}) == 16


def test_async_calls_share_the_pool_and_a_hang_does_not_block_others(
    pool: IsolatedExecutor,
) -> None:
    async def main() -> tuple[list[bytes], BaseException | bytes, float]:
        hang = asyncio.ensure_future(
            pool.call_json("Misbehave.hang", kwargs={"seconds": 60}, timeout=8.0)
        )
        await asyncio.sleep(0.2)
        started = time.monotonic()
        results = await asyncio.gather(
            *(pool.call_json("Codec.echo", kwargs={"value": i}) for i in range(200))
        )
        quick = time.monotonic() - started
        outcome = await asyncio.gather(hang, return_exceptions=True)
        return results, outcome[0], quick

    results, hung, quick = asyncio.run(main())
    assert [orjson.loads(r) for r in results] == list(range(200))
    assert quick < 7.0  # answered by the other worker while the hang held one
    assert isinstance(hung, ExecutionTimeout)


def test_async_crash_and_timeout_paths(pool: IsolatedExecutor) -> None:
    async def main() -> list[BaseException | bytes]:
        return await asyncio.gather(
            pool.call_json("Misbehave.exit_now"),
            pool.call_json("Misbehave.hang", timeout=0.5),
            pool.call_json("Codec.make_bytes", kwargs={"n": 1}),
            return_exceptions=True,
        )

    crashed, timed_out, ok = asyncio.run(main())
    assert isinstance(crashed, WorkerCrashed)
    assert isinstance(timed_out, ExecutionTimeout)
    assert ok == b'{"__gf__":"bytes","b64":"AA=="}'
    assert _settle(pool)["workers"] == 2


def test_workers_read_only_registered_functions(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'r.db'}"
    with Registry.open(url) as registry:
        registry.save(Scanner(FUNCS).scan_file(FUNCS / "Codec" / "echo.py"))
    with IsolatedExecutor(
        WorkerTarget(registry_url=url, cache_dir=str(tmp_path / "cache")), workers=1
    ) as ex:
        assert ex.call("Codec.echo", kwargs={"value": 3}) == 3
        with pytest.raises(FunctionNotFound):
            ex.call("Codec.type_name")  # a file exists, but it is not registered


def test_close_stops_every_worker(tmp_path: Path) -> None:
    ex = IsolatedExecutor(WorkerTarget(packages_dir=str(FUNCS)), workers=2)
    pids = ex.pids()
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    ex.close()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    with pytest.raises(Overloaded, match="closed"):
        ex.call("Codec.echo")


def test_bad_configuration_is_refused() -> None:
    target = WorkerTarget(packages_dir=str(FUNCS))
    with pytest.raises(ConfigError):
        IsolatedExecutor(target, workers=0)
    with pytest.raises(ConfigError):
        IsolatedExecutor(target, timeout=0)
    with pytest.raises(ConfigError):
        IsolatedExecutor(target, timeouts={"A.b": -1})
    with pytest.raises(ConfigError):
        IsolatedExecutor(target, memory_limit_mb=1)
    with pytest.raises(ConfigError):
        WorkerTarget()
    with pytest.raises(ConfigError, match="worker process"):
        IsolatedExecutor(target, workers=1, python="/bin/false")


def test_an_idle_worker_that_dies_is_replaced_before_the_next_call(tmp_path: Path) -> None:
    import signal

    async def main(ex: IsolatedExecutor) -> tuple[int, bytes]:
        assert await ex.call_json("Codec.echo", kwargs={"value": 1}) == b"1"
        victim = ex.pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while victim in ex.pids() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return victim, await ex.call_json("Codec.echo", kwargs={"value": 2})

    with IsolatedExecutor(WorkerTarget(packages_dir=str(FUNCS)), workers=1) as ex:
        victim, answer = asyncio.run(main(ex))
        assert victim not in ex.pids() and len(ex.pids()) == 1
        assert answer == b"2"
        assert ex.stats()["replaced"] == 1


def test_a_pool_on_a_callers_loop_serves_sync_calls_from_other_threads() -> None:
    import threading

    results: list[object] = []

    async def main() -> None:
        ex = IsolatedExecutor(
            WorkerTarget(packages_dir=str(FUNCS)), workers=1, loop=asyncio.get_running_loop()
        )
        await ex.astart()
        try:
            await ex.call_json("Codec.echo", kwargs={"value": 0})
            thread = threading.Thread(
                target=lambda: results.append(ex.call("Codec.echo", kwargs={"value": (1, 2)}))
            )
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.01)
            with pytest.raises(ConfigError, match="call_json"):
                ex.call("Codec.echo")  # would block the loop it needs
        finally:
            ex.close()

    asyncio.run(main())
    assert results == [(1, 2)]


def test_closing_fails_calls_in_flight() -> None:
    """Closing answers every call: the running one ``Interrupted`` (it may have run in
    part), the queued one ``Overloaded`` (nothing ran)."""

    async def main() -> BaseException | bytes:
        ex = IsolatedExecutor(WorkerTarget(packages_dir=str(FUNCS)), workers=1)
        pending = ex.submit_json("Misbehave.hang", kwargs={"seconds": 60})
        queued = ex.submit_json("Codec.echo", kwargs={"value": 1})
        await asyncio.sleep(0.2)
        ex.close()
        got = await asyncio.gather(pending, queued, return_exceptions=True)
        assert isinstance(got[1], Overloaded) and "stopping" in str(got[1])
        return got[0]

    running = asyncio.run(asyncio.wait_for(main(), 30))
    assert isinstance(running, Interrupted) and "may have run" in str(running), running


def test_workers_see_no_server_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GF_TOKEN", "server-secret-token")
    url = f"sqlite://{tmp_path / 'r.db'}"
    with Registry.open(url) as registry:
        registry.save(Scanner(FUNCS).scan_file(FUNCS / "Misbehave" / "read_env.py"))
    with IsolatedExecutor(
        WorkerTarget(registry_url=url, cache_dir=str(tmp_path / "cache")), workers=1
    ) as ex:
        assert ex.call("Misbehave.read_env", kwargs={"name": "GF_TOKEN"}) is None
        assert ex.call("Misbehave.read_env", kwargs={"name": "GF_WORKER_CONFIG"}) is None
        assert ex.call("Misbehave.read_env", kwargs={"name": "HOME"}) == os.environ.get("HOME")
        for pid in ex.pids():  # the storage URL is not on the world-readable command line
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert str(tmp_path).encode() not in cmdline
