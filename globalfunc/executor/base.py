"""What every executor shares: the :class:`Executor` surface, argument checks, resolving a
function by name, and turning what a user's function raises into an ``ExecutionError``.

:class:`ArgSpec` checks a call against the function's real signature (``BadArguments``,
the message shows the signature); :func:`_user_error` keeps the exception's type and
message (and its traceback only when ``debug``); :class:`_FunctionCache` holds resolved
functions with their compiled signatures and the registry hash they were loaded at. The
inline executor and the worker process both build on these.

What it does not do: run anything itself, serialize results, or know about processes,
pipes or event loops. It stays light because every worker process imports it.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from globalfunc.errors import BadArguments, ExecutionError

if TYPE_CHECKING:
    from globalfunc.record import FunctionRecord
    from globalfunc.resolve import Resolver

__all__ = ["ArgSpec", "Executor"]


# -- argument checking -----------------------------------------------------------------------
class ArgSpec:
    """A function's signature compiled for a fast argument check (``inspect`` on mismatch)."""

    __slots__ = ("_names", "_required", "_signature", "text")

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        sig = inspect.signature(func)
        self._signature = sig
        self.text = f"{name}{sig}"
        kinds = inspect.Parameter
        params = sig.parameters.values()
        self._names: frozenset[str] | None = (
            None
            if any(p.kind is kinds.VAR_KEYWORD for p in params)
            else frozenset(
                p.name
                for p in params
                if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
            )
        )
        if any(p.kind is kinds.POSITIONAL_ONLY and p.default is p.empty for p in params):
            self._names = frozenset()  # keyword-only fast path never applies
        self._required = frozenset(
            p.name
            for p in params
            if p.default is p.empty and p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        )

    def check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`BadArguments` (showing the signature) if the call would not bind."""
        names = self._names
        if not args and names and kwargs.keys() <= names and self._required <= kwargs.keys():
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(
                f"arguments do not fit {self.text}: {exc}", signature=self.text
            ) from None


def _user_error(name: str, exc: BaseException, debug: bool) -> ExecutionError:
    kind = type(exc).__qualname__
    module = type(exc).__module__
    full = kind if module == "builtins" else f"{module}.{kind}"
    text = str(exc)
    details: dict[str, Any] = {"function": name, "exc_type": full, "exc_message": text}
    if debug:
        details["traceback"] = "".join(traceback.format_exception(exc))
    err = ExecutionError(f"{name} raised {full}: {text}", **details)
    err.__cause__ = exc
    return err


# -- the common surface ------------------------------------------------------------------
class Executor(Protocol):
    """Runs functions by call name; ``call_json`` returns the result serialized."""

    mode: str

    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any: ...

    async def call_json(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        tagged: bool = True,
        timeout: float | None = None,
        version: str | None = None,
    ) -> bytes: ...

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
        """Like ``call_json``, but returns the bytes at once when the call already ran.

        ``record``: the stored version to run (its hash is ``version``); ``encoded``: the
        arguments are JSON values that may hold type tags, decoded where the call runs.
        """
        ...

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
        """Run from synchronous code; the result as JSON bytes (tagged)."""
        ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


# -- resolving and calling ----------------------------------------------------------------
class _FunctionCache:
    """Resolved functions with their compiled signatures and the hash they were loaded at."""

    __slots__ = ("entries", "resolver")

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.entries: dict[str, tuple[Callable[..., Any], ArgSpec, str | None]] = {}

    def prepare(
        self, name: str, version: str | None, *, trust_cache: bool
    ) -> tuple[Callable[..., Any], ArgSpec]:
        """The function and its ArgSpec; a known ``version`` skips name parsing and look-up."""
        entry = self.entries.get(name)
        if entry is not None and (
            (version is not None and entry[2] == version) or (version is None and trust_cache)
        ):
            return entry[0], entry[1]
        func = _resolve_version(self.resolver, name, version)
        held = self.resolver.record(name)
        spec = entry[1] if entry is not None and entry[0] is func else ArgSpec(name, func)
        self.entries[name] = (func, spec, held.sha256 if held is not None else None)
        return func, spec


def _resolve_version(resolver: Resolver, name: str, version: str | None) -> Callable[..., Any]:
    """Resolve ``name``; if the resolver holds another version than ``version``, reload it."""
    func = resolver.resolve(name)
    if version is not None:
        held = resolver.record(name)
        if held is not None and held.sha256 != version:
            resolver.invalidate(name.rsplit(".", 1)[0])
            func = resolver.resolve(name)
    return func


def _run_coroutine(awaitable: Awaitable[Any]) -> Any:
    import asyncio  # here, not at the top: only a worker that runs async functions pays for it

    async def wrap() -> Any:
        return await awaitable

    return asyncio.run(wrap())
