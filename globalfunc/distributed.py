"""Ray maps: one registry function over many inputs, across a Ray cluster.

::

    from globalfunc import distributed
    from gfbase import GFBase

    results = distributed.map(
        "Base.slug", [{"text": "A b"}, {"text": "C d"}],
        registry=GFBase("packages").registry, resources={"CPU": 1},
    )

The driver looks the function up once (:class:`~globalfunc.catalog.Catalog`: a valid
name, registered) and puts that version's record in Ray's object store; each Ray worker
compiles the code once per content hash (sha256) and keeps it, so no checkout of the
packages is needed on the cluster's machines (only ``pip install 'globalfunc[ray]'``).
Each task checks its arguments against the annotations
(:class:`~globalfunc.signature.CallSpec`) and calls the function; an item that fails
comes back as its :mod:`globalfunc.errors` error (``ExecutionError``, ``BadArguments``)
in its place while the other items complete. Results are in input order.

``resources`` are Ray's per-task requests: ``CPU``, ``GPU``, ``memory`` (bytes) and any
custom resource; a task runs ``batch`` items one after another (default: the items
spread over four tasks per CPU of the cluster, at most 100 items a task; ``batch=1``
is one task per item, what a GPU-sized call wants). ``address`` names a running cluster (``ray://host:10001`` or ``host:6379``); none
starts a local Ray, or uses the one this process already started. A tqdm progress bar
counts finished items on stderr.

Not here: calling workers over HTTP (:mod:`globalfunc.client`), the ``gf map`` command
(``globalfunc.cli.mapping``). Nothing here reads settings.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from globalfunc import jsoncodec
from globalfunc.catalog import Catalog
from globalfunc.errors import ConfigError, GlobalFuncError, InvalidRequest, error_from_dict
from globalfunc.record import FunctionRecord
from globalfunc.registry import Registry

__all__ = ["map", "ray_options", "run_batch"]

_RAY_KEYS = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}
_WAIT_CHUNK = 256
_MAX_AUTO_BATCH = 100

# The functions this Ray worker process has compiled, by content hash.
_COMPILED: dict[str, tuple[Any, Any]] = {}


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


def _function(record: FunctionRecord) -> tuple[Any, Any]:
    held = _COMPILED.get(record.sha256)
    if held is None:
        from globalfunc.executor.worker import _compile  # the isolated worker's compiler
        from globalfunc.signature import CallSpec

        held = (_compile(str(record.call_name), record.sha256, record.code), CallSpec.of(record))
        _COMPILED[record.sha256] = held
    return held


def run_batch(record: FunctionRecord, items: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Run ``record``'s function on each kwargs of ``items`` (what a Ray task does).

    Each outcome is ``(True, result)`` or ``(False, error body)`` (the JSON body of its
    :mod:`globalfunc.errors` error, status included), so one failure never fails the task.
    """
    from globalfunc.executor.base import _run_coroutine, _user_error

    name = str(record.call_name)
    out: list[Any] = []
    try:
        func, spec = _function(record)
    except GlobalFuncError as exc:
        return [(False, {**exc.to_dict(), "status": exc.http_status})] * len(items)
    except Exception as exc:  # the stored source does not even import
        failed = _user_error(name, exc, False)
        return [(False, {**failed.to_dict(), "status": failed.http_status})] * len(items)
    for kwargs in items:
        try:
            args, kw = spec.check([], jsoncodec.encode(dict(kwargs)))
            args, kw = jsoncodec.decode(args), jsoncodec.decode(kw)
            try:
                result = func(*args, **kw)
                if hasattr(result, "__await__"):
                    result = _run_coroutine(result)
            except (Exception, SystemExit) as exc:
                raise _user_error(name, exc, False) from exc
            out.append((True, result))
        except GlobalFuncError as err:
            out.append((False, {**err.to_dict(), "status": err.http_status}))
    return out


def _error(body: Mapping[str, Any]) -> GlobalFuncError:
    body = dict(body)
    status = int(body.pop("status", 500))
    return error_from_dict(body, status)


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "globalfunc.distributed needs Ray: pip install 'globalfunc[ray]'"
        ) from exc
    return ray


def _init(ray: Any, address: str | None) -> None:
    if ray.is_initialized():
        return
    # no address: a local Ray on this machine (the driver's environment, code and paths)
    ray.init(address=address, log_to_driver=False, include_dashboard=False)


def _batches(items: Iterable[Mapping[str, Any]], batch: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidRequest(
                f"item {i} is a {type(item).__name__}; each item must be a dict of keyword "
                "arguments"
            )
        chunk.append(dict(item))
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def map(  # the name users ask for: distributed.map (shadows the builtin here only)
    name: str,
    items: Iterable[Mapping[str, Any]],
    *,
    registry: Registry | Catalog,
    resources: Mapping[str, float] | None = None,
    address: str | None = None,
    batch: int | None = None,
    progress: bool = True,
) -> builtins.list[Any]:
    """``name``'s result for each kwargs of ``items``, in input order; a failed item's
    place holds its :class:`~globalfunc.errors.GlobalFuncError` (see the module)."""
    if batch is not None and batch < 1:
        raise InvalidRequest(f"batch must be at least 1, got {batch!r}")
    catalog = registry if isinstance(registry, Catalog) else Catalog(registry)
    record = catalog.lookup(name)
    options = ray_options(resources)
    ray = _ray()
    _init(ray, address)
    task = ray.remote(run_batch).options(**options) if options else ray.remote(run_batch)
    shared = ray.put(record)
    if batch is None:
        items = builtins.list(items)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        batch = max(1, min(_MAX_AUTO_BATCH, -(-len(items) // (4 * cpus))))
    refs = [task.remote(shared, chunk) for chunk in _batches(items, batch)]
    from tqdm import tqdm

    bar = tqdm(total=None, desc=name, unit="item", disable=not progress, file=sys.stderr)
    try:
        pending = builtins.list(refs)
        done: dict[Any, builtins.list[Any]] = {}
        while pending:
            ready, pending = ray.wait(
                pending, num_returns=min(len(pending), _WAIT_CHUNK), timeout=0.5
            )
            if not ready and pending:
                ready, pending = ray.wait(pending, num_returns=1)
            for ref, value in zip(ready, ray.get(ready), strict=True):
                done[ref] = value
                bar.update(len(value))
    finally:
        bar.close()
    out: builtins.list[Any] = []
    for ref in refs:
        for ok, value in done[ref]:
            out.append(value if ok else _error(value))
    return out
