"""Host a registry function (``Base.inverse_time_str``) as an AIGES engine.

A request's ``params`` and text payloads become keyword arguments by name, converted
with the parameter's annotation (or, without one, its default) read as source text:
``int``/``float``/``bool``/``str``, JSON for containers and anything unannotated. A
text payload that is not a parameter name but holds a JSON object (the schema's
``kwargs`` payload) is spread into the keyword arguments. The return value comes back
JSON-encoded as the text output ``result``.

Finding the function is a :data:`FunctionResolver` ``(call_name) -> (callable, params)``;
:func:`packages_resolver` builds one over a packages folder (or registry) with ``gfgo``.
Errors a caller can cause answer with the code of their :mod:`globalfunc.errors` class.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from globalfunc.errors import BadArguments, ExecutionError, GlobalFuncError, ResultNotSerializable
from globalfunc.naming import parse_call_name
from globalfunc.record import Param
from server.aiges.engine import EXEC_FAILED, INIT_FAILED, NOT_INITIALIZED, Emit, Frame, Outcome
from server.aiges.schema import DEFAULT_KEYWORD, function_schema

__all__ = [
    "FunctionEngine",
    "FunctionResolver",
    "convert_argument",
    "packages_resolver",
    "params_of",
]

log = logging.getLogger(__name__)

FunctionResolver = Callable[[str], tuple[Callable[..., Any], Sequence[Param]]]
"""``(call_name) -> (callable, params)``; params carry defaults/annotations as source text."""

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


def packages_resolver(root: Any) -> FunctionResolver:
    """A resolver over a packages folder, imported package or Registry (:mod:`globalfunc.resolve`)."""
    from globalfunc.resolve import Resolver  # imported late: it pulls in the registry

    resolver = Resolver(Path(root) if isinstance(root, str) else root)

    def resolve(name: str) -> tuple[Callable[..., Any], Sequence[Param]]:
        func = resolver.resolve(name)
        record = resolver.record(name)
        params: Sequence[Param] = (
            record.params if record is not None and record.params else params_of(func)
        )
        return func, params

    return resolve


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
    """Engine for one registry function; sessions are not supported (once exec only)."""

    def __init__(
        self, call_name: str, resolver: FunctionResolver, service_id: str | None = None
    ) -> None:
        self.call_name = str(parse_call_name(call_name))
        self.resolver = resolver
        self.service_id = service_id or self.call_name
        self.func: Callable[..., Any] | None = None
        self.params: dict[str, Param] = {}
        self._var_keyword = False

    def bind(self, emit: Emit) -> None:
        self._emit = emit

    def _load(self) -> None:
        func, params = self.resolver(self.call_name)
        self.func = func
        self.params = {p.name: p for p in params if p.kind not in ("var_positional", "var_keyword")}
        self._var_keyword = any(p.kind == "var_keyword" for p in params)

    def init(self, config: dict[str, str]) -> int:
        try:
            self._load()
        except Exception:
            log.exception("cannot load function %s", self.call_name)
            return INIT_FAILED
        return 0

    def schema(self, service_id: str) -> dict[str, Any]:
        if self.func is None:
            self._load()
        props: dict[str, dict[str, Any]] = {}
        for p in self.params.values():
            words = _type_words(p) - {"None", "Any", "object"}
            json_type = (
                "boolean"
                if words == {"bool"}
                else "integer"
                if words == {"int"}
                else "number"
                if words and words <= {"int", "float"}
                else "string"
            )
            prop: dict[str, Any] = {"type": json_type}
            note = "required" if p.required else f"default {p.default}"
            prop["description"] = f"{p.name}: {p.annotation or 'any'} ({note})"
            if p.default is not None:
                try:
                    default = ast.literal_eval(p.default)
                    if isinstance(default, str | int | float | bool):
                        prop[DEFAULT_KEYWORD] = default
                except (ValueError, SyntaxError):
                    pass
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

    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        if self.func is None:
            return Outcome.failure(NOT_INITIALIZED, "exec before a successful init")
        try:
            kwargs = self.build_kwargs(params, frames)
            try:
                result = self.func(**kwargs)
            except Exception as exc:
                raise ExecutionError(
                    f"{self.call_name} raised {type(exc).__name__}: {exc}"
                ) from exc
            try:
                body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
            except TypeError as exc:
                raise ResultNotSerializable(
                    f"{self.call_name} returned a {type(result).__name__}, which is not JSON"
                ) from exc
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
