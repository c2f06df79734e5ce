"""The inline executor: run registered functions in this process, on the caller's thread.

For trusted code, where the fastest path matters more than limits. Arguments are checked
and user errors translated as in every executor (:mod:`globalfunc.executor.base`);
``submit_json`` returns the serialized result at once when the function is synchronous.

What it does not do: stop a function that hangs (timeouts are accepted for interface
compatibility but not enforced; that needs :mod:`globalfunc.executor.isolated`), cap
memory, or survive a function that crashes the process.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from globalfunc import jsoncodec
from globalfunc.executor.base import ArgSpec, _FunctionCache, _run_coroutine, _user_error

if TYPE_CHECKING:
    from globalfunc.record import FunctionRecord
    from globalfunc.resolve import Resolver

__all__ = ["InlineExecutor"]


class InlineExecutor:
    """Calls functions in this process on the caller's thread: for trusted code.

    A function that hangs blocks the caller (and a server's event loop); timeouts are
    accepted for interface compatibility but cannot be enforced here.
    """

    mode = "inline"

    def __init__(self, resolver: Resolver, *, debug: bool = False) -> None:
        self.resolver = resolver
        self.debug = debug
        self._functions = _FunctionCache(resolver)

    def _prepare(self, name: str, version: str | None) -> tuple[Callable[..., Any], ArgSpec]:
        # Without a version, ask the resolver each time so GFGo reloads take effect.
        return self._functions.prepare(name, version, trust_cache=False)

    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        func, spec = self._prepare(name, None)
        kw = kwargs or {}
        spec.check(args, kw)
        try:
            result = func(*args, **kw)
            if inspect.isawaitable(result):
                result = _run_coroutine(result)
        except (Exception, SystemExit) as exc:
            raise _user_error(name, exc, self.debug) from exc
        return result

    def submit_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
        record: FunctionRecord | None = None,
        encoded: bool = False,
    ) -> bytes | Awaitable[bytes]:
        if record is not None:
            version = record.sha256
        func, spec = self._prepare(name, version)
        kw = kwargs or {}
        if encoded:  # JSON values as parsed from a request: decode their type tags here
            args, kw = jsoncodec.decode(list(args)), jsoncodec.decode(dict(kw))
        spec.check(args, kw)
        try:
            result = func(*args, **kw)
        except (Exception, SystemExit) as exc:
            raise _user_error(name, exc, self.debug) from exc
        if inspect.isawaitable(result):
            return self._await_json(name, result, tagged)
        return jsoncodec.dumps(result, tagged=tagged)

    async def _await_json(self, name: str, awaitable: Awaitable[Any], tagged: bool) -> bytes:
        try:
            result = await awaitable
        except (Exception, SystemExit) as exc:
            raise _user_error(name, exc, self.debug) from exc
        return jsoncodec.dumps(result, tagged=tagged)

    async def call_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
    ) -> bytes:
        out = self.submit_json(name, args, kwargs, tagged=tagged, version=version)
        return out if isinstance(out, bytes) else await out

    def call_sync_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        record: FunctionRecord | None = None,
        encoded: bool = False,
    ) -> bytes:
        out = self.submit_json(name, args, kwargs, record=record, encoded=encoded)
        return out if isinstance(out, bytes) else _run_coroutine(out)

    def stats(self) -> dict[str, int]:
        return {"workers": 0, "busy": 0, "replaced": 0}

    def close(self) -> None:
        """Nothing to release."""
