"""Host a registry function (``Base.inverse_time_str``) as an AIGES engine.

A request's ``params`` and text payloads become keyword arguments by name, converted
with the parameter's annotation (or, without one, its default) read as source text:
``int``/``float``/``bool``/``str``, JSON for containers and anything unannotated. A
text payload that is not a parameter name but holds a JSON object (the schema's
``kwargs`` payload) is spread into the keyword arguments. The return value comes back
JSON-encoded as the text output ``result``.

The text-to-type conversion is this module's; everything after it is the one call path,
:class:`globalfunc.invoke.Invoker` over an :class:`~globalfunc.executor.InlineExecutor`
(the plugin process is already the isolation boundary): the look-up (once, at init; the
record found then is the version every call runs), the argument check against the
signature, the translation of the function's exceptions and the result's serialization.
:func:`open_functions` builds that invoker over a registry, or over a packages folder
scanned into an in-memory registry. A :data:`FunctionResolver` ``(call_name) ->
(callable, params)`` is still accepted for code that already holds the function (tests,
the ase routes' argument mappers): its function is registered in a private in-memory
registry and runs through an invoker of its own, so there is no second way to call it.

Errors a caller can cause answer with the code of their :mod:`globalfunc.errors` class.
What it does not do: isolate the function (the plugin process is the boundary) or
speak gRPC (:mod:`server.aiges.plugin`, :mod:`server.aiges.native`).
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from globalfunc.catalog import Catalog
from globalfunc.errors import BadArguments, GlobalFuncError
from globalfunc.executor import InlineExecutor
from globalfunc.invoke import Invoker
from globalfunc.naming import CallName, parse_call_name
from globalfunc.record import FunctionRecord, Param
from globalfunc.registry import Registry
from globalfunc.resolve import Resolver
from globalfunc.signature import CallSpec
from server.aiges.engine import EXEC_FAILED, INIT_FAILED, NOT_INITIALIZED, Emit, Frame, Outcome
from server.aiges.schema import dialect_schema, function_schema

__all__ = [
    "FunctionEngine",
    "FunctionResolver",
    "convert_argument",
    "open_functions",
    "packages_resolver",
    "params_of",
]

log = logging.getLogger(__name__)

FunctionResolver = Callable[[str], tuple[Callable[..., Any], Sequence[Param]]]
"""``(call_name) -> (callable, params)``; params carry defaults/annotations as source text."""

NOT_FOUND_HINT = "check --function and --root (the packages folder the plugin scans)"
"""How the plugin's not-found message ends (see :class:`globalfunc.catalog.Catalog`)."""

_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.VAR_POSITIONAL: "var_positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    inspect.Parameter.VAR_KEYWORD: "var_keyword",
}
_TYPE_WORDS = re.compile(r"\b(bool|int|float|str|bytes|dict|list|tuple|set|None|Any|object)\b")
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", ""}


def params_of(func: Callable[..., Any]) -> list[Param]:
    """The signature of ``func`` as :class:`Param` records (defaults/annotations as source text)."""
    out: list[Param] = []
    for p in inspect.signature(func).parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        if p.annotation is inspect.Parameter.empty:
            annotation = None
        elif isinstance(p.annotation, str):
            annotation = p.annotation
        else:
            annotation = inspect.formatannotation(p.annotation)
        out.append(Param(p.name, _KINDS[p.kind], default, annotation))
    return out


def open_functions(root: Registry | str | Path, *, cache_dir: str | Path | None = None) -> Invoker:
    """The one call path over ``root``: a :class:`Registry`, or a packages folder.

    A folder is scanned into an in-memory registry (files that do not scan are logged and
    left out), so a function runs from its registered record either way. Calls run
    inline: the plugin process is the isolation boundary. ``cache_dir`` is where records
    are written out for import (default: the resolver's per-user cache).
    """
    if isinstance(root, Registry):
        registry = root
    else:
        from globalfunc.scan import Scanner  # here: only a folder root needs the scanner

        result = Scanner(Path(root)).scan()
        for problem in result.problems:
            log.warning("not hosted: %s", problem)
        registry = Registry.open("sqlite://:memory:")
        registry.save_many(list(result.functions.values()))
    executor = InlineExecutor(Resolver(registry, cache_dir=cache_dir))
    return Invoker(Catalog(registry, hint=NOT_FOUND_HINT), executor)


def packages_resolver(root: Any) -> FunctionResolver:
    """A resolver over a packages folder, imported package or Registry (:mod:`globalfunc.resolve`).

    Kept for callers that want ``(callable, params)``; an engine given it still runs its
    calls through an invoker. New code passes :func:`open_functions` to the engine.
    """
    resolver = Resolver(Path(root) if isinstance(root, str) else root)

    def resolve(name: str) -> tuple[Callable[..., Any], Sequence[Param]]:
        func = resolver.resolve(name)
        record = resolver.record(name)
        params: Sequence[Param] = (
            record.params if record is not None and record.params else params_of(func)
        )
        return func, params

    return resolve


class _GivenFunction(Resolver):
    """A resolver that knows one function it was handed, already imported."""

    def __init__(self, registry: Registry, call: CallName, func: Callable[..., Any]) -> None:
        super().__init__(registry)
        self._given = (str(call), func)

    def resolve(self, name: str | CallName) -> Callable[..., Any]:
        key = str(parse_call_name(name) if isinstance(name, str) else name)
        if key != self._given[0]:  # pragma: no cover - the engine asks for its own name only
            return super().resolve(name)
        return self._given[1]


def _given_record(
    call: CallName, func: Callable[..., Any], params: Sequence[Param]
) -> FunctionRecord:
    """A registry record for a function handed over as a callable (its source when known)."""
    try:
        code = inspect.getsource(func)
    except (OSError, TypeError):
        code = f"# {call} (source not available)\n"
    data = code.encode("utf-8")
    return FunctionRecord(
        package=call.package,
        name=call.func,
        code=code,
        md5=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        line_count=code.count("\n") + 1,
        modified_time="",
        params=tuple(params),
    )


def _invoker_for(call: CallName, func: Callable[..., Any], params: Sequence[Param]) -> Invoker:
    """An invoker whose in-memory registry holds ``func`` alone, under ``call``."""
    registry = Registry.open("sqlite://:memory:")
    registry.save(_given_record(call, func, params))
    executor = InlineExecutor(_GivenFunction(registry, call, func))
    return Invoker(Catalog(registry, hint=NOT_FOUND_HINT), executor)


async def _wait(pending: Awaitable[bytes]) -> bytes:
    return await pending


def _type_words(param: Param) -> set[str]:
    if param.annotation:
        words = set(_TYPE_WORDS.findall(param.annotation))
        if "Optional" in param.annotation:
            words.add("None")
        return words
    if param.default is not None:
        try:
            value = ast.literal_eval(param.default)
        except (ValueError, SyntaxError):
            return set()
        return {"None"} if value is None else {type(value).__name__}
    return set()


def convert_argument(param: Param, text: str) -> Any:
    """Convert one text value for ``param``; raises :class:`BadArguments` when it cannot."""
    words = _type_words(param) - {"Any", "object"}
    concrete = words - {"None"}
    if not concrete:
        if "None" in words and text.strip().lower() in ("null", "none"):
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "str" in concrete and concrete <= {"str", "bytes"}:
        return text
    stripped = text.strip()
    if "None" in words and stripped.lower() in ("null", "none") and "str" not in concrete:
        return None
    lowered = stripped.lower()
    if "bool" in concrete and (
        (concrete == {"bool"} and lowered in _TRUE | _FALSE) or lowered in ("true", "false")
    ):
        return lowered in _TRUE
    if "int" in concrete:
        try:
            return int(stripped)
        except ValueError:
            pass
    if "float" in concrete:
        try:
            return float(stripped)
        except ValueError:
            pass
    if concrete & {"dict", "list", "tuple", "set"}:
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict | list):
            if "tuple" in concrete and isinstance(value, list):
                return tuple(value)
            if "set" in concrete and isinstance(value, list):
                return set(value)
            return value
    if "str" in concrete:
        return text
    raise BadArguments(
        f"argument {param.name}={text!r} is not a valid {param.annotation or param.default!s}; "
        "send it as a literal of that type (JSON for lists and dicts)",
        param=param.name,
    )


class FunctionEngine:
    """Engine for one registry function; sessions are not supported (once exec only).

    ``source`` is the call path (an :class:`Invoker`, e.g. from :func:`open_functions`),
    or a :data:`FunctionResolver` for a function already in hand (see the module
    docstring). ``init`` looks the function up, imports it and keeps the record found:
    every call runs that version, with the parameters it was registered with.
    """

    def __init__(
        self,
        call_name: str,
        source: Invoker | FunctionResolver,
        service_id: str | None = None,
    ) -> None:
        self.call_name = str(parse_call_name(call_name))
        self.source = source
        self.service_id = service_id or self.call_name
        self.invoker: Invoker | None = source if isinstance(source, Invoker) else None
        self.record: FunctionRecord | None = None
        self.params: dict[str, Param] = {}
        self._all_params: tuple[Param, ...] = ()
        self._loaded = False
        self._given: tuple[Callable[..., Any], Sequence[Param]] | None = None
        self._var_keyword = False

    def bind(self, emit: Emit) -> None:
        self._emit = emit

    def _load(self) -> None:
        if isinstance(self.source, Invoker):
            record = self.source.lookup(self.call_name)
            executor = self.source.executor
            if isinstance(executor, InlineExecutor):
                executor.resolver.resolve(self.call_name)  # import now: a broken file fails init
            self.record = record
            params: Sequence[Param] = record.params
        else:
            func, params = self.source(self.call_name)
            self._given = (func, params)
        self._all_params = tuple(params)
        self.params = {p.name: p for p in params if p.kind not in ("var_positional", "var_keyword")}
        self._var_keyword = any(p.kind == "var_keyword" for p in params)
        self._loaded = True

    def init(self, config: dict[str, str]) -> int:
        try:
            self._load()
        except GlobalFuncError as exc:
            log.error("cannot load function %s: %s", self.call_name, exc.message)
            return INIT_FAILED
        except Exception:
            log.exception("cannot load function %s", self.call_name)
            return INIT_FAILED
        return 0

    def schema(self, service_id: str) -> dict[str, Any]:
        if not self._loaded:
            self._load()
        # The JSON schema of the argument checker (CallSpec, the one model) in the
        # loader's dialect; no second mapping from annotation text.
        spec = CallSpec(self.call_name, list(self._all_params))
        props: dict[str, dict[str, Any]] = {}
        for p in self.params.values():
            if p.kind == "positional_only":
                continue
            prop = dialect_schema(spec.param_schema(p.name))
            note = "required" if p.name in spec.required else f"default {p.default}"
            prop["description"] = f"{p.name}: {p.annotation or 'any'} ({note})"
            props[p.name] = prop
        # Required arguments may also arrive in the ``kwargs`` payload, so the HTTP schema
        # lists none as required; the engine checks them per call.
        return function_schema(self.service_id, props, [])

    def fini(self) -> int:
        return 0

    def build_kwargs(self, params: dict[str, str], frames: list[Frame]) -> dict[str, Any]:
        """The keyword arguments a request maps to (see the module docstring)."""
        kwargs: dict[str, Any] = {}
        for name, text in params.items():
            if name in self.params:
                kwargs[name] = convert_argument(self.params[name], text)
            elif self._var_keyword:
                kwargs[name] = text
        for frame in frames:
            text = frame.data.decode("utf-8", errors="strict")
            if frame.key in self.params:
                kwargs[frame.key] = convert_argument(self.params[frame.key], text)
                continue
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if isinstance(value, dict):
                kwargs.update(value)
            elif self._var_keyword:
                kwargs[frame.key] = text
            else:
                raise BadArguments(
                    f"payload {frame.key!r} is not a parameter of {self.call_name} "
                    f"(parameters: {', '.join(self.params) or 'none'}) and not a JSON object of them",
                    payload=frame.key,
                )
        missing = [p.name for p in self.params.values() if p.required and p.name not in kwargs]
        if missing:
            raise BadArguments(
                f"{self.call_name} needs {', '.join(missing)}; pass them as parameters or in "
                "the 'kwargs' JSON payload",
                missing=missing,
            )
        unknown = [k for k in kwargs if k not in self.params]
        if unknown and not self._var_keyword:
            raise BadArguments(
                f"{self.call_name} has no parameter {', '.join(unknown)}", unknown=unknown
            )
        return kwargs

    def _call_path(self) -> tuple[Invoker, FunctionRecord | None]:
        """The invoker calls go through, and the record they are pinned to."""
        # Built on first use for a handed-over function (the ase routes' mappers never
        # call); two threads racing here build equal invokers, and either one serves.
        if self.invoker is None:
            assert self._given is not None
            func, params = self._given
            invoker = _invoker_for(parse_call_name(self.call_name), func, params)
            self.invoker, self.record = invoker, invoker.lookup(self.call_name)
        return self.invoker, self.record

    def call(self, kwargs: dict[str, Any]) -> bytes:
        """Run the function through the one call path; its result as JSON bytes."""
        invoker, record = self._call_path()
        out = invoker.submit(self.call_name, (), kwargs, tagged=False, record=record)
        return out if isinstance(out, bytes) else asyncio.run(_wait(out))

    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        if not self._loaded:
            return Outcome.failure(NOT_INITIALIZED, "exec before a successful init")
        try:
            body = self.call(self.build_kwargs(params, frames))
        except GlobalFuncError as exc:
            log.warning("call %s (tag %s) failed: %s", self.call_name, tag, exc.message)
            return Outcome.failure(exc.aiges_code, exc.message)
        except UnicodeDecodeError as exc:
            return Outcome.failure(BadArguments.aiges_code, f"a text payload is not UTF-8: {exc}")
        except Exception as exc:  # defensive: never leave a request without an answer
            log.exception("call %s (tag %s) failed", self.call_name, tag)
            return Outcome.failure(EXEC_FAILED, str(exc))
        desc = {"encoding": "utf8", "compress": "raw", "format": "json"}
        return Outcome(ret=0, frames=[Frame("result", body, 0, 3, desc)])

    def create(self, params: dict[str, str], sid: str, tag: str) -> tuple[str, int]:
        log.warning("wrapperCreate on function %s: sessions are not supported", self.call_name)
        return "", EXEC_FAILED

    def write(self, handle: str, frames: list[Frame], sid: str) -> int:
        return EXEC_FAILED

    def destroy(self, handle: str) -> int:
        return 0
