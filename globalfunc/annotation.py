"""Annotation source text to the type it names, without importing the function's module.

A small interpreter over a fixed vocabulary (builtins, ``typing``, ``collections.abc``,
``datetime``, ``decimal``, ``pathlib``, ``uuid``): names, attributes (the last name
decides), ``X | Y``, subscripts, ``Literal[...]``, quoted forward references. Anything
else (``np.ndarray``, a user's class, a call) is :data:`typing.Any`: the parameter is not
checked. What it does not do: evaluate code (no ``eval``), or import anything.
"""

from __future__ import annotations

import ast
import collections.abc
import datetime
import decimal
import pathlib
import typing
import uuid
from typing import Any

__all__ = ["annotation_type"]

_UNKNOWN: Any = object()
_NAMES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "bytes": bytes,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "None": type(None),
    "NoneType": type(None),
    "object": Any,
    "Any": Any,
    "Optional": typing.Optional,
    "Union": typing.Union,
    "Literal": typing.Literal,
    "List": list,
    "Dict": dict,
    "Tuple": tuple,
    "Set": set,
    "FrozenSet": frozenset,
    "datetime": datetime.datetime,
    "date": datetime.date,
    "time": datetime.time,
    "timedelta": datetime.timedelta,
    "Decimal": decimal.Decimal,
    "Path": pathlib.Path,
    "UUID": uuid.UUID,
}
for _name in ("Sequence", "Mapping", "MutableMapping", "Iterable", "Collection", "MutableSequence"):
    _NAMES[_name] = getattr(collections.abc, _name)


def annotation_type(text: str | None) -> Any:
    """The type an annotation's source text names, or ``Any`` when it is not one we know."""
    if not text:
        return Any
    try:
        found = _evaluate(ast.parse(text, mode="eval").body)
    except (SyntaxError, TypeError, ValueError, RecursionError):
        return Any
    return Any if found is _UNKNOWN or found is Ellipsis else found


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return type(None)
        if node.value is Ellipsis:  # tuple[int, ...]: only meaningful as a subscript item
            return Ellipsis
        if isinstance(node.value, str):  # a quoted annotation
            return _evaluate(ast.parse(node.value, mode="eval").body)
        return _UNKNOWN
    if isinstance(node, ast.Name):
        return _NAMES.get(node.id, _UNKNOWN)
    if isinstance(node, ast.Attribute):  # typing.Any, dt.datetime: the last name decides
        return _NAMES.get(node.attr, _UNKNOWN) if node.attr != "time" else datetime.time
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _evaluate(node.left), _evaluate(node.right)
        if _UNKNOWN in (left, right):
            return _UNKNOWN
        return typing.Union[left, right]  # noqa: UP007 - built from values, not syntax
    if isinstance(node, ast.Subscript):
        base = _evaluate(node.value)
        if base is _UNKNOWN:
            return _UNKNOWN
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is typing.Literal:
            values = [ast.literal_eval(item) for item in items]
            return typing.Literal[tuple(values)]
        args = tuple(_evaluate(item) for item in items)
        if _UNKNOWN in args:
            return _UNKNOWN
        return base[args if len(args) > 1 else args[0]]
    if isinstance(node, ast.Constant | ast.Ellipsis):  # pragma: no cover - py<3.8 shapes
        return _UNKNOWN
    return _UNKNOWN
