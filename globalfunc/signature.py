"""A function's arguments checked against its annotations, and the JSON schemas that say so.

One place for both (issue: "an exact HTTP contract"): :class:`CallSpec` is built from a
stored record's parameters, whose annotations and defaults are source text as the scanner
read them, so the function's module is never imported. Annotation text is evaluated by a
small interpreter over a fixed vocabulary (builtins, ``typing``, ``collections.abc``,
``datetime``, ``decimal``, ``pathlib``, ``uuid``); a name outside it (``np.ndarray``, a
class of the user's) makes that parameter unchecked, as an unannotated one is.

The rules, the same for every surface (``/gfgo/``, ``/call/``, ase, ``gf call``, the AIGES
function host, all through :mod:`globalfunc.invoke`):

- values are checked in pydantic's **strict JSON mode**: no coercion between kinds (``"1"``
  is not an ``int``, ``1.0`` is not an ``int``, ``true`` is not an ``int``), but what JSON
  cannot spell is read from its usual spelling (an ``int`` is a ``float``, a list is a
  ``tuple`` or a ``set``, an ISO string is a ``datetime``, a string is ``bytes``);
- a parameter whose default is ``None`` but whose annotation does not admit ``None`` (the
  seed's ``text: str = None``) is required: ``None`` was a placeholder the function rejects;
- the function receives the checked value: ``1.0`` for a ``float`` sent as ``1``, a tuple
  for a ``tuple`` sent as a list, a ``datetime`` for one sent as an ISO string;
- a value sent with a GlobalFunc type tag (``GFClient``'s bytes, tuples, datetimes) is
  decoded and checked in pydantic's lax Python mode (the client named its type: a tuple
  fits a ``list``; bytes never fit an ``int``); ``*args`` and ``**kwargs`` values are
  checked against their annotation too;
- a mismatch is :class:`~globalfunc.errors.BadArguments` (HTTP 422) naming the parameter,
  what it expected and what it got.

``request_schema()`` and ``response_schema()`` are the JSON schemas of the same model, for
the OpenAPI document. What it does not do: run or import the function.
"""

from __future__ import annotations

import ast
import inspect
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from globalfunc import jsoncodec
from globalfunc.annotation import annotation_type
from globalfunc.errors import BadArguments, GlobalFuncError
from globalfunc.record import FunctionInfo, Param

__all__ = ["CallSpec", "annotation_type"]


def _admits_none(kind: Any) -> bool:
    try:
        TypeAdapter(kind).validate_python(None, strict=True)
    except ValidationError:
        return False
    return True


_KINDS = {
    "positional_only": inspect.Parameter.POSITIONAL_ONLY,
    "positional_or_keyword": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "var_positional": inspect.Parameter.VAR_POSITIONAL,
    "keyword_only": inspect.Parameter.KEYWORD_ONLY,
    "var_keyword": inspect.Parameter.VAR_KEYWORD,
}
_PLACEHOLDER = object()  # a default we did not evaluate: the function applies its own


class CallSpec:
    """The checked parameters of one function version; see the module docstring."""

    __slots__ = (
        "_keywords",
        "_model",
        "_partials",
        "_returns",
        "_var_types",
        "checked",
        "name",
        "params",
        "required",
        "signature",
        "text",
    )

    def __init__(
        self,
        name: str,
        params: Sequence[Param],
        returns: str | None = None,
        signature: str | None = None,
    ) -> None:
        self.name = name
        self.params = tuple(params)
        self.text = f"{name}{signature or _text(self.params)}"
        fields: dict[str, Any] = {}
        self._var_types: dict[str, Any] = {}
        self._partials: dict[frozenset[str], type[BaseModel]] = {}
        self.checked: dict[str, Any] = {}
        self.required: list[str] = []
        sig_params = []
        var_keyword = False
        for p in self.params:
            kind = _KINDS.get(p.kind, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            has_default = p.default is not None
            sig_params.append(
                inspect.Parameter(
                    p.name, kind, default=_PLACEHOLDER if has_default else inspect.Parameter.empty
                )
            )
            if kind is inspect.Parameter.VAR_KEYWORD:
                var_keyword = True
                self._var_types[p.name] = dict[str, annotation_type(p.annotation)]  # type: ignore[misc]
                continue
            if kind is inspect.Parameter.VAR_POSITIONAL:
                self._var_types[p.name] = list[annotation_type(p.annotation)]  # type: ignore[misc]
                continue
            kind_type = annotation_type(p.annotation)
            required = not has_default or (
                p.default == "None" and kind_type is not Any and not _admits_none(kind_type)
            )
            if required:
                self.required.append(p.name)
            if kind_type is not Any:
                self.checked[p.name] = kind_type
            default = _literal(p.default) if has_default and not required else ...
            # A field per parameter under a name pydantic takes as a field whatever the
            # parameter is called (``model_config``, ``_x``, ``json``): the name is its alias.
            fields[_field(len(fields))] = (kind_type, Field(default, alias=p.name, title=p.name))
        # Ordered by kind, unvalidated: a hand-built record whose params come in an order
        # no def can have still gets a signature to bind against instead of a ValueError.
        self.signature = inspect.Signature(
            sorted(sig_params, key=lambda q: q.kind), __validate_parameters__=False
        )
        config = ConfigDict(
            strict=True, extra="allow" if var_keyword else "forbid", populate_by_name=False
        )
        self._model = create_model(f"{name}.arguments", __config__=config, **fields)
        self._keywords = frozenset(
            p.name for p in self.params if p.kind in ("positional_or_keyword", "keyword_only")
        )
        self._returns = annotation_type(returns)

    @classmethod
    def of(cls, info: FunctionInfo) -> CallSpec:
        """The spec of a stored version (cached by its hash)."""
        key = info.sha256
        with _CACHE_LOCK:
            spec = _CACHE.get(key)
            if spec is not None:
                _CACHE.move_to_end(key)
                return spec
        spec = cls(f"{info.package}.{info.name}", info.params, info.returns, info.signature)
        with _CACHE_LOCK:
            _CACHE[key] = spec
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return spec

    # -- checking --------------------------------------------------------------------------
    def check(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """The arguments as the function receives them (JSON values, type tags kept);
        :class:`BadArguments` naming the parameter when they do not fit."""
        if not args and kwargs.keys() <= self._keywords:  # the common call: keywords only
            values = dict(kwargs)
            bound = None
        else:
            try:
                bound = self.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise BadArguments(
                    f"arguments do not fit {self.text}: {exc}", signature=self.text
                ) from None
            values = bound.arguments
        missing = [n for n in self.required if n not in values]
        if missing:
            raise BadArguments(
                f"arguments do not fit {self.text}: missing a required argument: "
                f"{missing[0]!r} (expected {self._expected(missing[0])})",
                parameter=missing[0],
                expected=self._expected(missing[0]),
                signature=self.text,
            )
        plain: dict[str, Any] = {}
        for n, v in values.items():
            if n in self.checked:
                if _has_tag(v):  # sent typed by GFClient: decoded to check
                    values[n] = jsoncodec.encode(self._check_tagged(n, self.checked[n], v))
                else:
                    plain[n] = v
            elif n in self._var_types:
                extra = list(v) if isinstance(v, tuple) else v
                if _has_tag(extra):
                    self._check_tagged(n, self._var_types[n], extra)
                else:
                    self._check_var(n, extra)
        if plain:
            for n, v in self._validate(plain).items():
                values[n] = v if type(v) in _JSON_KINDS else jsoncodec.encode(v)
        if bound is None:
            return [], values
        return list(bound.args), dict(bound.kwargs)

    def _check_var(self, name: str, value: Any) -> None:
        """``*args``/``**kwargs`` values against their annotation, in strict JSON mode."""
        kind = self._var_types[name]
        if kind in (list[Any], dict[str, Any]):
            return
        try:
            TypeAdapter(kind).validate_json(_dumps(value), strict=True)
        except ValidationError as exc:
            raise self._refusal(name, exc) from None

    def _check_tagged(self, name: str, kind: Any, value: Any) -> Any:
        """A value sent with type tags: decoded and checked in pydantic's lax Python mode
        (the client named its type: a tuple fits a ``list``, bytes never fit an ``int``);
        the checked value, which the function receives."""
        try:
            decoded = jsoncodec.decode(value)
        except GlobalFuncError as exc:
            raise BadArguments(f"argument {name!r} of {self.name}: {exc}", parameter=name) from None
        try:
            return TypeAdapter(kind).validate_python(decoded)
        except ValidationError as exc:
            raise self._refusal(name, exc) from None

    def _validate(self, plain: dict[str, Any]) -> dict[str, Any]:
        names = sorted(plain)
        model = self._partial(frozenset(names))
        try:
            checked = model.model_validate_json(_dumps(plain), strict=True)
        except ValidationError as exc:
            raise self._refusal(None, exc) from None
        return {names[int(f[1:])]: v for f, v in checked}

    def _partial(self, names: frozenset[str]) -> type[BaseModel]:
        """A model checking just ``names`` (the plain-JSON values of one call), kept here."""
        model = self._partials.get(names)
        if model is None:
            fields: dict[str, Any] = {
                _field(i): (self.checked[n], Field(alias=n)) for i, n in enumerate(sorted(names))
            }
            model = create_model(
                f"{self.name}.arguments", __config__=ConfigDict(strict=True), **fields
            )
            if len(self._partials) < 64:
                self._partials[names] = model
        return model

    def _refusal(self, name: str | None, exc: ValidationError) -> BadArguments:
        first = exc.errors()[0]
        loc = [str(x) for x in first["loc"]]
        if name is None:
            name, loc = (loc[0], loc[1:]) if loc else ("?", [])
        inner = ".".join(loc)
        return BadArguments(
            f"argument {name + ('[' + inner + ']' if inner else '')!r} of {self.name} "
            f"must be {self._expected(name)}: {first['msg']}, got "
            f"{_short(first.get('input'))}",
            parameter=name,
            expected=self._expected(name),
        )

    def _expected(self, name: str) -> str:
        for p in self.params:
            if p.name == name:
                return p.annotation or "any value"
        return "any value"

    # -- schemas -------------------------------------------------------------------------
    # Every schema below is read off the model ``check`` validates with (no second mapping
    # from annotation text): what a schema allows, the check accepts, and the other way round.
    def _properties(self) -> dict[str, dict[str, Any]]:
        schema = _inline(self._model.model_json_schema(mode="validation"))
        props: dict[str, dict[str, Any]] = _accepting_duplicates(schema.get("properties", {}))
        return props

    def param_schema(self, name: str) -> dict[str, Any]:
        """The JSON schema of one named (not ``*args``/``**kwargs``) parameter's value."""
        return dict(self._properties()[name])

    @property
    def positional(self) -> list[str]:
        """The parameters that may be passed by position, in order."""
        return [
            p.name for p in self.params if p.kind in ("positional_only", "positional_or_keyword")
        ]

    @property
    def keyword(self) -> list[str]:
        """The parameters that may be passed by keyword, in order."""
        return [p.name for p in self.params if p.kind in ("positional_or_keyword", "keyword_only")]

    def var_positional(self) -> dict[str, Any] | None:
        """The schema of each extra positional value (``*args``), or None without one."""
        return self._var_schema("var_positional")

    def var_keyword(self) -> dict[str, Any] | None:
        """The schema of each extra keyword value (``**kwargs``), or None without one."""
        return self._var_schema("var_keyword")

    def _var_schema(self, kind: str) -> dict[str, Any] | None:
        for p in self.params:
            if p.kind == kind:  # each value is checked against the annotation (``check``)
                item = annotation_type(p.annotation)
                if item is Any:
                    return {}
                schema: dict[str, Any] = _accepting_duplicates(
                    _inline(TypeAdapter(item).json_schema())
                )
                return schema
        return None

    def keywords_schema(self, skip: Sequence[str] = ()) -> dict[str, Any] | None:
        """The JSON schema of the keyword-arguments object when the parameters in ``skip``
        came by position; None when no such object can satisfy the check (a required
        positional-only parameter left out)."""
        props = self._properties()
        names = [n for n in self.keyword if n not in skip]
        left = [p.name for p in self.params if p.kind == "positional_only" and p.name not in skip]
        if any(n in self.required for n in left):
            return None
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {n: props[n] for n in names},
        }
        required = [n for n in self.required if n in names]
        if required:
            schema["required"] = required
        extra = self.var_keyword()
        schema["additionalProperties"] = False if extra is None else extra or True
        return schema

    def request_schema(self) -> dict[str, Any]:
        """The JSON schema of the keyword-arguments object this function accepts."""
        schema = self.keywords_schema()
        if schema is not None:
            return schema
        # A required positional-only parameter: no keywords object is a valid call. The
        # keyword parameters are still listed; "not" says no body satisfies the check.
        only = [p.name for p in self.params if p.kind == "positional_only"]
        described = self.keywords_schema(skip=only) or {}
        return {**described, "not": {}}

    def response_schema(self) -> dict[str, Any]:
        """The JSON schema of the result (``{}``: any JSON value)."""
        if self._returns is Any:
            return {}
        try:
            return _inline(TypeAdapter(self._returns).json_schema(mode="serialization"))
        except Exception:  # a type pydantic cannot describe: say nothing rather than wrong
            return {}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references written out and the titles pydantic adds
    dropped, so that a fragment stands alone inside another document."""
    defs = schema.get("$defs", {})

    def walk(node: Any, depth: int) -> Any:
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 32:
            target = defs.get(ref[len("#/$defs/") :], {})
            return walk({**target, **{k: v for k, v in node.items() if k != "$ref"}}, depth + 1)
        out = {}
        for key, value in node.items():
            if key in ("$defs", "title"):
                continue
            if key in ("properties", "patternProperties") and isinstance(value, dict):
                out[key] = {name: walk(sub, depth) for name, sub in value.items()}
            elif key == "default":
                out[key] = value
            else:
                out[key] = walk(value, depth)
        return out

    result: dict[str, Any] = walk(schema, 0)
    return result


_CACHE: OrderedDict[str, CallSpec] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4096
_JSON_KINDS = frozenset({int, float, str, bool, type(None)})


def _accepting_duplicates(node: Any) -> Any:
    """The schema without ``uniqueItems``: a ``set`` argument is checked from a JSON list
    whose duplicates are dropped, not refused (the schema must not promise a refusal)."""
    if isinstance(node, list):
        return [_accepting_duplicates(v) for v in node]
    if isinstance(node, dict):
        return {k: _accepting_duplicates(v) for k, v in node.items() if k != "uniqueItems"}
    return node


def _field(index: int) -> str:
    return f"f{index}"


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer past 64 bits
        return json.dumps(value).encode()


def _has_tag(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return jsoncodec.TAG in value or any(_has_tag(v) for v in value.values())
    if kind is list:
        return any(_has_tag(v) for v in value)
    return False


def _literal(text: str | None) -> Any:
    try:
        value = ast.literal_eval(text or "")
        orjson.dumps(value)
    except (ValueError, SyntaxError, TypeError, orjson.JSONEncodeError, RecursionError):
        return None  # a default JSON cannot show: the schema names none
    return value


def _text(params: Sequence[Param]) -> str:
    parts = []
    for p in params:
        star = "*" if p.kind == "var_positional" else "**" if p.kind == "var_keyword" else ""
        part = f"{star}{p.name}" + (f": {p.annotation}" if p.annotation else "")
        if p.default is not None:
            part += f" = {p.default}"
        parts.append(part)
    return f"({', '.join(parts)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
