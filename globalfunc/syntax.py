"""What a function's syntax tree says, as text: its parameters and signature, its imports.

Read from the parsed file (:mod:`ast`) and sliced from the source (:class:`Source`, much
faster than ``ast.unparse``), never by importing the file. Used by the scanner
(:mod:`globalfunc.scan`). What it does not do: read files or build records.
"""

from __future__ import annotations

import ast

from globalfunc.record import Param

__all__ = ["Source", "format_signature", "imports_of", "signature_parts"]


class Source:
    """Source text of AST nodes, sliced from the file (much faster than ``ast.unparse``)."""

    __slots__ = ("lines",)

    def __init__(self, data: bytes) -> None:
        self.lines = data.split(b"\n")

    def __call__(self, node: ast.expr | None) -> str | None:
        if node is None:
            return None
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        end = node.end_col_offset if node.end_col_offset is not None else None
        if first == last:
            raw = self.lines[first][node.col_offset : end]
        else:
            raw = b"\n".join(
                [
                    self.lines[first][node.col_offset :],
                    *self.lines[first + 1 : last],
                    self.lines[last][:end],
                ]
            )
        return raw.decode("utf-8").strip()


def signature_parts(
    func: ast.FunctionDef | ast.AsyncFunctionDef, src: Source
) -> tuple[tuple[Param, ...], str, str | None]:
    """Parameters, the ``inspect``-style signature text, and the return annotation."""
    a = func.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += a.defaults
    params: list[Param] = []
    for i, arg in enumerate(positional):
        kind = "positional_only" if i < len(a.posonlyargs) else "positional_or_keyword"
        params.append(Param(arg.arg, kind, src(defaults[i]), src(arg.annotation)))
    if a.vararg:
        params.append(Param(a.vararg.arg, "var_positional", None, src(a.vararg.annotation)))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append(Param(arg.arg, "keyword_only", src(default), src(arg.annotation)))
    if a.kwarg:
        params.append(Param(a.kwarg.arg, "var_keyword", None, src(a.kwarg.annotation)))
    returns = src(func.returns)
    return tuple(params), format_signature(params, returns), returns


def format_signature(params: list[Param] | tuple[Param, ...], returns: str | None = None) -> str:
    """Render parameters as ``inspect.Signature`` would: ``(a: int = 1, *, b, **kw) -> str``."""
    out: list[str] = []
    star_done = False
    for i, p in enumerate(params):
        if p.kind == "var_positional":
            text, star_done = "*" + p.name, True
        elif p.kind == "var_keyword":
            text = "**" + p.name
        else:
            if p.kind == "keyword_only" and not star_done:
                out.append("*")
                star_done = True
            text = p.name
        if p.annotation is not None:
            text += f": {p.annotation}"
        if p.default is not None:
            text += f" = {p.default}" if p.annotation is not None else f"={p.default}"
        out.append(text)
        if p.kind == "positional_only" and (
            i + 1 == len(params) or params[i + 1].kind != "positional_only"
        ):
            out.append("/")
    sig = "(" + ", ".join(out) + ")"
    return sig + (f" -> {returns}" if returns is not None else "")


_NESTED = (ast.If, ast.Try, ast.With, ast.For, ast.While, ast.FunctionDef, ast.AsyncFunctionDef)


def imports_of(body: list[ast.stmt]) -> tuple[str, ...]:
    """Module names imported in statement bodies (top level, functions, if/try/with/loops)."""
    found: dict[str, None] = {}
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Import:
            for alias in node.names:  # type: ignore[attr-defined]
                found[alias.name] = None
        elif kind is ast.ImportFrom:
            if node.level == 0 and node.module:  # type: ignore[attr-defined]
                found[node.module] = None  # type: ignore[attr-defined]
        elif isinstance(node, _NESTED):
            stack.extend(node.body)
            if isinstance(node, ast.Try):
                stack.extend(node.orelse)
                stack.extend(node.finalbody)
                for handler in node.handlers:
                    stack.extend(handler.body)
            elif isinstance(node, ast.If | ast.For | ast.While):
                stack.extend(node.orelse)
    return tuple(sorted(found))
