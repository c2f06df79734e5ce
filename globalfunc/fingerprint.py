"""A normalized AST fingerprint: the same logic written with other names looks the same.

:func:`fingerprint` parses a function's code and hashes its syntax tree after removing
what does not change what the function does: the function's own name, docstrings,
comments and formatting (the tree has none), type annotations, and the names of its
parameters and local variables, which become ``v0``, ``v1``, ... in order of first
appearance. Global names (builtins, imports, other functions), attribute names,
constants and keyword-argument names of calls are kept, so ``len(x)`` and ``sum(x)``
differ. What the function's file defines at module level is part of it too, normalized
the same way (docstrings, bare strings and annotations dropped; a helper function's
locals renumbered; the function's own name ignored wherever it appears): ``import math``
and ``import cmath as math``, ``FACTOR = 2`` and ``FACTOR = 3``, or two helpers of the
same name that do different things make different fingerprints. Two versions with the
same fingerprint are duplicates of each other.

Fingerprints carry a version prefix (:data:`VERSION`); one of an older version (kept in
a stored record or a scan cache) is recomputed from the code by :func:`fingerprint_of`.

It does not import or run anything, and it does not judge equivalence beyond the tree
(``x + 1`` and ``1 + x`` differ).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from typing import Any

from globalfunc.record import FunctionInfo

__all__ = [
    "VERSION",
    "DuplicateCheckFailed",
    "DuplicateFunction",
    "fingerprint",
    "fingerprint_node",
    "fingerprint_of",
]


class DuplicateFunction(UserWarning):
    """Warned when a saved function has the same logic as another live one."""


class DuplicateCheckFailed(UserWarning):
    """Warned when a save landed but the check for same-logic functions could not run."""


#: the prefix of this module's fingerprints (2: the module-level definitions count)
VERSION = "m2:"


_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:] or [ast.Pass()]
    return body


def _local_names(func: ast.AST) -> set[str]:
    """Names bound inside a function (parameters, assignments, loops, imports, ...)."""
    names: set[str] = set()
    declared_global: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared_global.update(node.names)
        elif isinstance(node, ast.ExceptHandler | ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name and node is not func:
                names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
    return names - declared_global


class _Normalizer(ast.NodeTransformer):
    def __init__(self, local: set[str], own_name: str) -> None:
        self.local = local
        self.own_name = own_name
        self.renamed: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        if name == self.own_name:
            return "_self_"
        if name not in self.local:
            return name
        if name not in self.renamed:
            self.renamed[name] = f"v{len(self.renamed)}"
        return self.renamed[name]

    def visit_Name(self, node: ast.Name) -> Any:
        node.id = self._rename(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> Any:
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        return self._func(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> Any:
        return self._func(node)

    def _func(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> Any:
        node.name = self._rename(node.name)
        node.returns = None
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args = self.visit(node.args)
        body = [self.visit(s) for s in _strip_docstring(node.body)]
        node.body = [s for s in body if s is not None] or [ast.Pass()]  # None: a comment
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        node.name = self._rename(node.name)
        node.body = _strip_docstring(node.body)
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        if node.value is None:
            return None  # a bare annotation binds nothing
        return ast.Assign(targets=[self.visit(node.target)], value=self.visit(node.value))

    def visit_alias(self, node: ast.alias) -> Any:
        if node.asname:
            node.asname = self._rename(node.asname)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        if node.name:
            node.name = self._rename(node.name)
        self.generic_visit(node)
        return node

    def visit_Expr(self, node: ast.Expr) -> Any:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # a bare string is a comment
        self.generic_visit(node)
        return node


def _target(tree: ast.Module, name: str | None) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    funcs = [n for n in tree.body if isinstance(n, _FUNCS[:2])]
    for node in funcs:
        if node.name == name:
            return node
    return funcs[0] if funcs else None


def fingerprint(code: str, name: str | None = None) -> str:
    """The fingerprint (sha256 hex) of function ``name`` in ``code`` (default: its first
    function); code that does not parse, or holds no function, hashes its bare text."""
    try:
        tree = ast.parse(code.lstrip("\ufeff"))
    except (SyntaxError, ValueError):
        return "text:" + hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()
    func = _target(tree, name)
    if func is None:
        return "text:" + hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()
    return fingerprint_node(func, tree)


def fingerprint_node(
    func: ast.FunctionDef | ast.AsyncFunctionDef, module: ast.Module | None = None
) -> str:
    """The fingerprint of a parsed function, with what ``module`` (its file's tree)
    defines at module level. The nodes are changed in place: pass ones that are not
    needed afterwards."""
    own = func.name
    shapes = []
    for node in module.body if module is not None else ():
        if node is func:
            continue
        normal = _Normalizer(_local_names(node) if isinstance(node, _FUNCS) else set(), own)
        kept = normal.visit(node)
        if kept is not None:  # None: a docstring, a bare string or a bare annotation
            shapes.append(ast.dump(kept, annotate_fields=False, include_attributes=False))
    normal_func = _Normalizer(_local_names(func), own).visit(func)
    shapes.append(ast.dump(normal_func, annotate_fields=False, include_attributes=False))
    return VERSION + hashlib.sha256("\n".join(shapes).encode("utf-8")).hexdigest()


def fingerprint_of(info: FunctionInfo) -> str:
    """A scanned or stored function's fingerprint: the one it carries when it is of this
    :data:`VERSION`, else computed (once per content and name: versions stored before
    fingerprints, or before this version of them, carry none or an older one)."""
    fp = info.fingerprint
    if fp.startswith((VERSION, "text:")):
        return fp
    return _computed(info.sha256, info.name, info.code)


@functools.lru_cache(maxsize=65536)
def _computed(sha256: str, name: str, code: str) -> str:
    return fingerprint(code, name)
