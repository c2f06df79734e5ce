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
(:class:`~globalfunc.signature.CallSpec`), calls the function and encodes the result
with :mod:`globalfunc.jsoncodec` there (the driver gets only JSON, never an object of a
class it cannot import). An item that fails comes back as its :mod:`globalfunc.errors`
error in its place while the other items complete: ``ExecutionError``, ``BadArguments``,
``ResultNotSerializable`` / ``ResultNotFinite``, ``WorkerCrashed`` (it exited or crashed
its process), ``ExecutionTimeout`` (past ``timeout``). Results are in input order;
:func:`stream` yields them as soon as each and all before it are done.

Ray's task retries are off (``max_retries=0``): a batch whose worker died, or that ran
past ``timeout`` x its items (its task is force-cancelled), is run again one item per
task, so its items that had finished run twice and only the culprit gets the error.

``resources`` are Ray's per-task requests: ``CPU``, ``GPU``, ``memory`` (bytes) and any
custom resource, checked against the cluster's live nodes before anything is sent (Ray
would queue a task no node can run forever, silently); a task runs ``batch`` items one
after another (default: the items spread over four tasks per CPU of the cluster, at most
100 items a task; ``batch=1`` is one task per item, what a GPU-sized call wants; with a
``timeout`` the default is 1, no more tasks are sent than the cluster can run at once,
and the job's worker processes are started first (once per job; waiting at most
``timeout``), so a task's clock starts when it starts; it includes Ray starting a new
worker process, about a second, after a timed-out task's was killed). ``address`` names a running cluster
(``ray://host:10001`` or ``host:6379``); none starts a local Ray, or uses the one this
process already started (:func:`shutdown` stops it). A tqdm progress bar counts finished
items on stderr. Ctrl-C while waiting cancels the tasks still running.

Not here: what is asked of the Ray cluster (joining it, its capacity, starting a job's
worker processes: :mod:`globalfunc.raycluster`), calling workers over HTTP
(:mod:`globalfunc.client`), the ``gf map`` command (``globalfunc.cli.mapping``). Nothing
here reads settings.
"""

from __future__ import annotations

import builtins
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from globalfunc import jsoncodec, raycluster
from globalfunc.catalog import Catalog
from globalfunc.errors import (
    ExecutionError,
    ExecutionTimeout,
    GlobalFuncError,
    InvalidRequest,
    WorkerCrashed,
    error_from_dict,
)
from globalfunc.raycluster import import_ray, join, ray_options, shutdown
from globalfunc.record import FunctionRecord
from globalfunc.registry import Registry

__all__ = ["Outcome", "map", "ray_options", "run_batch", "shutdown", "stream"]

log = logging.getLogger(__name__)

_WAIT_CHUNK = 256
_POLL = 0.5  # seconds between looks at deadlines and at Ctrl-C

# The functions this Ray worker process has compiled, by content hash.
_COMPILED: dict[str, tuple[Any, Any]] = {}


def _function(record: FunctionRecord) -> tuple[Any, Any]:
    held = _COMPILED.get(record.sha256)
    if held is None:
        from globalfunc.executor.worker import _compile  # the isolated worker's compiler
        from globalfunc.signature import CallSpec

        held = (_compile(str(record.call_name), record.sha256, record.code), CallSpec.of(record))
        _COMPILED[record.sha256] = held
    return held


def _body(err: GlobalFuncError) -> dict[str, Any]:
    return {**err.to_dict(), "status": err.http_status}


def run_batch(record: FunctionRecord, items: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Run ``record``'s function on each kwargs of ``items`` (what a Ray task does).

    Each outcome is ``(True, JSON bytes of the result)`` (encoded here with
    :mod:`globalfunc.jsoncodec`, as the HTTP server answers, so the driver never needs the
    function's own classes) or ``(False, error body)`` (the JSON body of its
    :mod:`globalfunc.errors` error, status included), so one failure never fails the task.
    """
    from globalfunc.executor.base import _run_coroutine, _user_error

    name = str(record.call_name)
    out: list[Any] = []
    try:
        func, spec = _function(record)
    except GlobalFuncError as exc:
        return [(False, _body(exc))] * len(items)
    except Exception as exc:  # the stored source does not even import
        return [(False, _body(_user_error(name, exc, False)))] * len(items)
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
            out.append((True, jsoncodec.dumps(result)))  # ResultNotSerializable/NotFinite
        except GlobalFuncError as err:
            out.append((False, _body(err)))
    return out


def _error(body: Mapping[str, Any]) -> GlobalFuncError:
    body = dict(body)
    status = int(body.pop("status", 500))
    return error_from_dict(body, status)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item's outcome, as :func:`stream` yields it (in input order)."""

    index: int
    """The item's place in the input (0-based; counts the skipped items too)."""
    ok: bool
    value: Any
    """``ok``: the result's JSON bytes (:mod:`globalfunc.jsoncodec`); else the error body."""

    def result(self) -> Any:
        """The decoded result, or the item's :class:`~globalfunc.errors.GlobalFuncError`."""
        if not self.ok:
            return _error(self.value)
        try:
            return jsoncodec.loads(self.value)
        except GlobalFuncError as err:  # e.g. an ndarray where this process has no numpy
            return err

    def json_line(self) -> bytes:
        """``{"result": ...}`` or the error body (``{"error": ..., "message": ...}``), one line."""
        if self.ok:
            return b'{"result":' + self.value + b"}\n"
        body = dict(self.value)
        body.pop("status", None)
        return jsoncodec.dumps_encoded(body) + b"\n"


@dataclass
class _Job:
    """Items ``first .. first + len(items)`` sent as one Ray task."""

    first: int
    items: builtins.list[dict[str, Any]]
    ref: Any = None
    deadline: float = math.inf


def _checked(items: Iterable[Mapping[str, Any]]) -> builtins.list[dict[str, Any]]:
    out: builtins.list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidRequest(
                f"item {i} is a {type(item).__name__}; each item must be a dict of keyword "
                "arguments"
            )
        out.append(dict(item))
    return out


def stream(
    name: str,
    items: Iterable[Mapping[str, Any]],
    *,
    registry: Registry | Catalog,
    resources: Mapping[str, float] | None = None,
    address: str | None = None,
    batch: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
    start: int = 0,
) -> Iterator[Outcome]:
    """Each item's :class:`Outcome`, in input order, as soon as it and all before it are done.

    The checks (name, resources, batch, timeout, items) and the start of Ray happen
    before this returns; no Ray is started for no items. Closing the iterator (or
    Ctrl-C while it waits) cancels the tasks still running. ``start`` is added to each
    outcome's ``index`` (for a resumed map).
    """
    if batch is not None and batch < 1:
        raise InvalidRequest(f"batch must be at least 1, got {batch!r}")
    if timeout is not None and not timeout > 0:
        raise InvalidRequest(f"timeout must be a number of seconds > 0, got {timeout!r}")
    catalog = registry if isinstance(registry, Catalog) else Catalog(registry)
    record = catalog.lookup(name)
    options = ray_options(resources)
    work = _checked(items)
    if not work:
        return iter(())
    ray = import_ray()
    join(ray, address)
    capacity = raycluster.capacity(ray, options)
    if batch is None:
        batch = 1 if timeout is not None else raycluster.auto_batch(ray, len(work))
    jobs = [_Job(start + i, work[i : i + batch]) for i in builtins.range(0, len(work), batch)]
    # with a timeout, send no more tasks than can run at once, so a task's clock starts
    # when it starts running rather than while it waits in Ray's queue
    window = capacity if timeout is not None else len(jobs)
    if timeout is not None:
        raycluster.warm(ray, options, min(window, len(jobs)), wait=timeout)
    task = ray.remote(run_batch).options(max_retries=0, **options)
    return _run(ray, task, ray.put(record), str(name), jobs, window, timeout, progress, start)


def _run(
    ray: Any,
    task: Any,
    shared: Any,
    name: str,
    jobs: builtins.list[_Job],
    window: int,
    timeout: float | None,
    progress: bool,
    start: int,
) -> Iterator[Outcome]:
    from ray.exceptions import RayError
    from tqdm import tqdm

    queue = deque(jobs)
    pending: dict[Any, _Job] = {}
    done: dict[int, tuple[bool, Any]] = {}
    following = start
    bar = tqdm(
        total=sum(len(j.items) for j in jobs),
        desc=name,
        unit="item",
        disable=not progress,
        file=sys.stderr,
    )

    def settle(job: _Job, outcomes: builtins.list[Any]) -> None:
        for k, outcome in enumerate(outcomes):
            done[job.first + k] = outcome
        bar.update(len(outcomes))

    def failed(job: _Job, why: GlobalFuncError) -> None:
        if len(job.items) > 1:  # find the one item: each again in a task of its own
            queue.extendleft(
                reversed([_Job(job.first + k, [it]) for k, it in enumerate(job.items)])
            )
        else:
            settle(job, [(False, _body(why))])

    try:
        while queue or pending:
            now = time.monotonic()
            while queue and len(pending) < window:
                job = queue.popleft()
                job.ref = task.remote(shared, job.items)
                if timeout is not None:
                    job.deadline = now + timeout * len(job.items)
                pending[job.ref] = job
            wait = _POLL
            if timeout is not None:
                wait = max(0.0, min(wait, min(j.deadline for j in pending.values()) - now))
            ready, _ = ray.wait(
                builtins.list(pending), num_returns=min(len(pending), _WAIT_CHUNK), timeout=wait
            )
            try:
                values = ray.get(ready)
            except RayError:  # one of them failed: take them one by one
                values = None
            for k, ref in enumerate(ready):
                job = pending.pop(ref)
                if values is not None:
                    settle(job, values[k])
                    continue
                try:
                    settle(job, ray.get(ref))
                except RayError as exc:
                    failed(job, _crashed(name, job, exc))
            if timeout is not None:
                now = time.monotonic()
                for ref, job in builtins.list(pending.items()):
                    if job.deadline <= now:
                        del pending[ref]
                        ray.cancel(ref, force=True)
                        raycluster.cooled(ray)  # its process is killed: warm up again next map
                        failed(job, _timed_out(name, job, timeout))
            while following in done:
                ok, value = done.pop(following)
                yield Outcome(following, ok, value)
                following += 1
    finally:
        if pending:
            raycluster.cooled(ray)
        for ref in pending:  # interrupted, or the caller stopped reading
            try:
                ray.cancel(ref, force=True)
            except Exception:  # best effort: the cluster may be gone already
                log.debug("could not cancel a task of %s", name, exc_info=True)
        bar.close()


def _crashed(name: str, job: _Job, exc: BaseException) -> GlobalFuncError:
    if isinstance(exc, import_ray().exceptions.RayTaskError):
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return ExecutionError(
            f"{name}: the Ray task for item {job.first} failed: {first}", function=name
        )
    return WorkerCrashed(
        f"{name}: the Ray worker running item {job.first} died ({type(exc).__name__}): the "
        "function may have exited its process (os._exit), crashed or run out of memory",
        function=name,
        item=job.first,
    )


def _timed_out(name: str, job: _Job, timeout: float) -> GlobalFuncError:
    return ExecutionTimeout(
        f"{name}: item {job.first} ran past its timeout of {timeout:g} s and was stopped; "
        "give a larger timeout (--timeout) if it needs longer",
        function=name,
        item=job.first,
        timeout=timeout,
    )


def map(  # the name users ask for: distributed.map (shadows the builtin here only)
    name: str,
    items: Iterable[Mapping[str, Any]],
    *,
    registry: Registry | Catalog,
    resources: Mapping[str, float] | None = None,
    address: str | None = None,
    batch: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> builtins.list[Any]:
    """``name``'s result for each kwargs of ``items``, in input order; a failed item's
    place holds its :class:`~globalfunc.errors.GlobalFuncError` (see the module)."""
    outcomes = stream(
        name,
        items,
        registry=registry,
        resources=resources,
        address=address,
        batch=batch,
        timeout=timeout,
        progress=progress,
    )
    return [outcome.result() for outcome in outcomes]
