"""The one call path: a function's name and arguments to its result, for every surface.

``POST /gfgo/``, ``POST /call/<name>``, the ase endpoints, ``gf call`` and the AIGES
function host all call :meth:`Invoker.submit` (or :meth:`Invoker.call` from synchronous
code). One place therefore decides, for every surface:

- the look-up: the name validated, on the allow-list, registered (``Catalog``), once;
- the version: the record found is the one that runs (its hash pins the executor, and an
  isolated worker is sent that record's code);
- the arguments: a server passes them as parsed from its request (``encoded=True``: JSON
  values that may still hold type tags); they are checked against the function's
  annotations (:class:`~globalfunc.signature.CallSpec`, 422 ``BadArguments`` on a
  mismatch) and decoded once, where the function runs (in the worker for the isolated
  executor, so the server never imports numpy);
- the errors: :mod:`globalfunc.errors` classes, which each edge renders in its own shape.

What it does not do: parse requests, check tokens or render errors (the edges do), or run
anything itself (the executor does).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from globalfunc import idempotency, jsoncodec
from globalfunc.catalog import Catalog
from globalfunc.errors import GlobalFuncError
from globalfunc.executor.base import Executor
from globalfunc.record import FunctionRecord
from globalfunc.signature import CallSpec

__all__ = ["CallObserver", "Invoker"]

CallObserver = Callable[[str, int, float, str | None], None]
"""``observe(function, status, seconds, error_name)``, once per finished call."""


class Invoker:
    """Looks a function up once and runs it on the executor; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        executor: Executor,
        *,
        observe: CallObserver | None = None,
    ) -> None:
        self.catalog = catalog
        self.executor = executor
        self.observe = observe

    def lookup(self, name: str) -> FunctionRecord:
        """The record a call of ``name`` runs; InvalidName, Forbidden or FunctionNotFound."""
        return self.catalog.lookup(name)

    def submit(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        encoded: bool = False,
        tagged: bool = True,
        timeout: float | None = None,
        record: FunctionRecord | None = None,
        idempotency_key: str | None = None,
        client_gone: Callable[[], bool] | None = None,
    ) -> bytes | Awaitable[bytes]:
        """Run ``name``; its result as JSON bytes, at once or (isolated) to await.

        In a worker, the call goes through its :class:`~globalfunc.idempotency.CallGuard`
        (counted in flight; run once per ``idempotency_key``; a duplicate waiting on its key
        stops when ``client_gone()`` says its caller left); elsewhere both are unused.
        """
        if record is None:
            record = self.lookup(name)
        guard = idempotency.current()
        if guard is not None:
            found = record
            return guard.submit(
                idempotency_key,
                lambda: self._submit(name, args, kwargs, encoded, tagged, timeout, found),
                client_gone,
            )
        return self._submit(name, args, kwargs, encoded, tagged, timeout, record)

    def _submit(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        encoded: bool,
        tagged: bool,
        timeout: float | None,
        record: FunctionRecord,
    ) -> bytes | Awaitable[bytes]:
        started = time.perf_counter()
        try:
            args, kwargs = self._checked(record, args, kwargs, encoded)
            out = self.executor.submit_json(
                name,
                args,
                kwargs,
                tagged=tagged,
                timeout=timeout,
                version=record.sha256,
                record=record,
                encoded=True,
            )
        except GlobalFuncError as err:
            self._observe(name, started, err)
            raise
        if isinstance(out, bytes):
            self._observe(name, started, None)
            return out
        if self.observe is None:
            return out
        return self._observed(name, started, out)

    async def _observed(self, name: str, started: float, pending: Awaitable[bytes]) -> bytes:
        try:
            out = await pending
        except GlobalFuncError as err:
            self._observe(name, started, err)
            raise
        self._observe(name, started, None)
        return out

    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Run ``name`` from synchronous code (not on the loop of an isolated pool it uses)."""
        record = self.lookup(name)
        started = time.perf_counter()
        try:
            args, kwargs = self._checked(record, args, kwargs, False)
            raw = self.executor.call_sync_json(
                name, args, kwargs, timeout=timeout, record=record, encoded=True
            )
        except GlobalFuncError as err:
            self._observe(name, started, err)
            raise
        self._observe(name, started, None)
        return jsoncodec.loads(raw)

    @staticmethod
    def _checked(
        record: FunctionRecord,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        encoded: bool,
    ) -> tuple[list[Any], dict[str, Any]]:
        """The arguments as JSON values with type tags, checked against the annotations."""
        if not encoded:
            args, kwargs = jsoncodec.encode(list(args)), jsoncodec.encode(dict(kwargs or {}))
        return CallSpec.of(record).check(args, kwargs or {})

    def _observe(self, name: str, started: float, err: GlobalFuncError | None) -> None:
        if self.observe is not None:
            status = 200 if err is None else err.http_status
            self.observe(
                name,
                status,
                time.perf_counter() - started,
                None if err is None else type(err).__name__,
            )
