"""What the ase routes serve, and the one place they call a registry function.

:class:`AseServices` holds the in-process engines (wrapper.py services, by service id),
the thread pool they run on, and a cache of argument mappers for registry functions.
:func:`call_registry_function` is the only code on the ase routes that runs a registry
function: arguments mapped from the request by the function's registered signature, the
call submitted to the server's executor (the same executor as ``POST /gfgo/``).

It does not parse or render bodies (:mod:`.protocol`) nor speak HTTP (:mod:`.handlers`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

from globalfunc.errors import InvalidRequest
from globalfunc.invoke import Invoker
from globalfunc.record import FunctionRecord
from server.aiges.ase_http.protocol import RESULT_DESC, AseError
from server.aiges.engine import INIT_FAILED, Engine, Frame, Outcome
from server.aiges.function_host import FunctionEngine
from server.http.state import AppState

__all__ = ["AseServices", "call_registry_function"]

log = logging.getLogger(__name__)


def _runs_in_the_executor(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError(
        "a registry function on the ase route runs through the server's executor, not here"
    )


class AseServices:
    """What the ase routes serve: in-process engines by service id, plus registry functions.

    Registry functions come from the serving :class:`AppState` (its catalog and executor)
    at request time; this object only caches their argument mappers (one
    :class:`FunctionEngine` per call name and version, built from the registered
    signature; it never imports or runs the function). Engines run on ``workers``
    threads. :meth:`close` finalises the engines and stops the pool.
    """

    def __init__(self, engines: Mapping[str, Engine] | None = None, *, workers: int = 4) -> None:
        self.engines: dict[str, Engine] = dict(engines or {})
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="aiges-http")
        self._mappers: dict[str, tuple[str, FunctionEngine]] = {}
        self._standalone: AppState | None = None

    def mapper(self, record: FunctionRecord) -> FunctionEngine:
        """The params/payloads -> kwargs mapping of ``record``'s signature."""
        name = f"{record.package}.{record.name}"
        hit = self._mappers.get(name)
        if hit is not None and hit[0] == record.sha256:
            return hit[1]
        params = list(record.params)
        engine = FunctionEngine(name, lambda _name: (_runs_in_the_executor, params))
        if engine.init({}) == INIT_FAILED:  # pragma: no cover - the resolver above cannot fail
            raise InvalidRequest(f"cannot map the arguments of {name}")
        self._mappers[name] = (record.sha256, engine)
        return engine

    def standalone_state(self) -> AppState:
        """Shared state for routes mounted outside :func:`server.http.app.make_app`.

        No token, the default body limit, and an empty in-memory registry (so only the
        engines are services); used when the ase rules go into a plain
        ``tornado.web.Application``.
        """
        if self._standalone is None:
            from globalfunc.catalog import Catalog
            from globalfunc.executor import InlineExecutor
            from globalfunc.invoke import Invoker
            from globalfunc.registry import Registry
            from globalfunc.resolve import Resolver
            from server.http.metrics import Metrics
            from server.http.state import DEFAULT_MAX_BODY

            registry = Registry.open("sqlite://:memory:")
            catalog = Catalog(registry)
            executor = InlineExecutor(Resolver(registry))
            self._standalone = AppState(
                catalog=catalog,
                executor=executor,
                invoker=Invoker(catalog, executor),
                metrics=Metrics(),
                token=None,
                max_body=DEFAULT_MAX_BODY,
                cors_origins=frozenset(),
                debug=False,
                info={"service": "GlobalFunc ase"},
            )
        return self._standalone

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for svc, engine in self.engines.items():
            try:
                engine.fini()
            except Exception:
                log.exception("fini of ase service %s failed", svc)
        if self._standalone is not None:
            self._standalone.catalog.registry.close()
            self._standalone = None


async def call_registry_function(
    invoker: Invoker,
    mapper: FunctionEngine,
    record: FunctionRecord,
    params: dict[str, str],
    frames: list[Frame],
) -> Outcome:
    """Run ``record`` for one ase request; its JSON result as the text output ``result``.

    ``params``/``frames`` become keyword arguments through ``mapper`` (the registered
    signature); the call runs through ``invoker`` (the one call path) pinned to the record. Errors a
    caller can cause raise :mod:`globalfunc.errors` classes (or :class:`AseError`).
    """
    try:
        kwargs = mapper.build_kwargs(params, frames)
    except UnicodeDecodeError as exc:
        raise AseError(InvalidRequest.aiges_code, f"a text payload is not UTF-8: {exc}") from exc
    svc = f"{record.package}.{record.name}"
    out = invoker.submit(svc, (), kwargs, tagged=False, record=record)
    data = out if isinstance(out, bytes) else await out
    return Outcome(ret=0, frames=[Frame("result", data, 0, 3, dict(RESULT_DESC))])
