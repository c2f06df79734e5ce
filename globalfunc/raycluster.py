"""What :mod:`globalfunc.distributed` needs to know of a Ray cluster, and asks of it.

Importing Ray (an extra: a clear :class:`~globalfunc.errors.ConfigError` without it),
joining a cluster or starting a local one, turning ``resources`` into Ray's task options,
how many tasks the live nodes can run at once (refusing, before anything is sent, a
request no node can meet: Ray would queue it forever and say so only in a log we hide),
the default batch size, and starting a job's worker processes before timed items run.

Not here: running items, their order, timeouts or errors (:mod:`globalfunc.distributed`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from globalfunc.errors import ConfigError, InvalidRequest

__all__ = [
    "auto_batch",
    "capacity",
    "cooled",
    "import_ray",
    "join",
    "ray_options",
    "shutdown",
    "warm",
]

log = logging.getLogger(__name__)

_RAY_KEYS = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}
_MAX_AUTO_BATCH = 100
_WARMED: dict[tuple[str, str, str], int] = {}  # (cluster, job, task options) -> processes


def ray_options(resources: Mapping[str, float] | None) -> dict[str, Any]:
    """Ray ``.options(...)`` for ``{"CPU": 1, "GPU": 0.5, "memory": bytes, "custom": n}``."""
    options: dict[str, Any] = {}
    custom: dict[str, float] = {}
    for key, value in (resources or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidRequest(
                f"resource {key!r} must be a number >= 0, got {value!r} "
                "(e.g. {'CPU': 1, 'GPU': 0.5, 'memory': 2 * 2**30})"
            )
        if key in _RAY_KEYS:
            options[_RAY_KEYS[key]] = int(value) if key == "memory" else value
        else:
            custom[key] = value
    if custom:
        options["resources"] = custom
    return options


def import_ray() -> Any:
    """The ``ray`` module; :class:`ConfigError` saying how to install it when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "globalfunc.distributed needs Ray: pip install 'globalfunc[ray]'"
        ) from exc
    return ray


def join(ray: Any, address: str | None) -> None:
    """Connect to the cluster at ``address``, or start a local Ray (none: this machine)."""
    if ray.is_initialized():
        return
    # no address: a local Ray on this machine (the driver's environment, code and paths)
    ray.init(address=address, log_to_driver=False, include_dashboard=False)


def shutdown() -> None:
    """Stop this process's local Ray, or disconnect from the cluster (no-op without Ray)."""
    ray = sys.modules.get("ray")
    _WARMED.clear()
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _needs(options: Mapping[str, Any]) -> dict[str, float]:
    """What one task asks of a node, by Ray resource name (a task takes 1 CPU by default)."""
    needs = {"CPU": float(options.get("num_cpus", 1))}
    needs["GPU"] = float(options.get("num_gpus", 0))
    needs["memory"] = float(options.get("memory", 0))
    needs.update({k: float(v) for k, v in options.get("resources", {}).items()})
    return {k: v for k, v in needs.items() if v > 0}


def capacity(ray: Any, options: Mapping[str, Any]) -> int:
    """How many tasks the cluster can run at once; ``InvalidRequest`` when it can run none.

    Checked before any task is sent: Ray would otherwise queue an infeasible task forever
    (its warning goes to the driver's log, which ``log_to_driver=False`` hides).
    """
    needs = _needs(options)
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    fits = [min((int(res.get(k, 0) / v) for k, v in needs.items()), default=1) for res in nodes]
    if any(fits):
        return max(1, sum(fits))
    for key, value in needs.items():
        most = max((res.get(key, 0.0) for res in nodes), default=0.0)
        if most < value:
            have = "none" if most == 0 else f"at most {most:g}"
            raise InvalidRequest(
                f"each task asks for {key} {value:g}, but no node of the Ray cluster has it "
                f"({have}); ask for less (resources= / --cpus / --gpus / --memory-mb) "
                "or add a node that has it"
            )
    raise InvalidRequest(
        f"no single node of the Ray cluster has all of {needs} that each task asks for; "
        "ask for less or add a node that has it all"
    )


def warm(ray: Any, options: Mapping[str, Any], count: int, wait: float) -> None:
    """Have Ray start this job's ``count`` worker processes before any item's clock runs (a
    new job's first tasks wait for them: seconds on a loaded machine, which timed out quick
    items). Once per job and options; waits at most ``wait`` seconds (a cluster busy with
    other jobs: the items' clocks then include Ray's queue, as documented)."""
    from ray.exceptions import RayError

    key = (*_job(ray), repr(sorted(options.items())))
    if _WARMED.get(key, 0) >= count:
        return
    pause = ray.remote(_pause).options(max_retries=0, **options)
    refs = [pause.remote(0.2) for _ in range(count)]  # at once: one process each
    try:
        done, rest = ray.wait(refs, num_returns=count, timeout=wait)
        pids = set(ray.get(done))
    except RayError as exc:  # the items meet the same trouble and report it one by one
        log.warning("starting Ray worker processes failed (%s); running the items anyway", exc)
        return
    for ref in rest:
        ray.cancel(ref)
    if not rest:  # as many as ran side by side (a busy cluster may have run them in turn)
        _WARMED[key] = len(pids)


def cooled(ray: Any) -> None:
    """Forget this job's warm-up: a force-cancelled task killed one of its processes."""
    job = _job(ray)
    for key in [k for k in _WARMED if k[:2] == job]:
        del _WARMED[key]


def _job(ray: Any) -> tuple[str, str]:
    context = ray.get_runtime_context()
    return str(context.gcs_address), str(context.get_job_id())


def _pause(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def auto_batch(ray: Any, count: int) -> int:
    """Items a task: the items spread over four tasks per CPU, at most 100 a task."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(_MAX_AUTO_BATCH, -(-count // (4 * cpus))))
