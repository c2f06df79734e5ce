"""``gf call NAME k=v ...``: call a function in this process, or on a server with ``--url``.

Arguments are ``name=value`` pairs (values are JSON, else strings) or ``--json OBJECT``.
Locally the arguments are checked against the signature first (a misfit is
:class:`~globalfunc.errors.BadArguments`, one line naming the signature), and an
exception the function raises becomes one ``gf: error: NAME raised TYPE: message`` line
(the traceback with ``--debug``). With ``--url`` the server's error is printed the same way.

Not here: the client (:mod:`globalfunc.client`) or the resolver (:mod:`globalfunc.resolve`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from globalfunc.cli.context import EXIT_OK, Context, out
from globalfunc.errors import InvalidRequest

__all__ = ["add_parsers", "cmd_call", "parse_kv"]


LOCAL_HINT = "list the registered ones with `gf ls`, or save it first with `gf save`"
"""How a local ``gf call`` of an unregistered name ends its message."""


def parse_kv(items: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` as ``{"a": 1, "b": "x"}``: JSON values, else the bare string."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"argument {item!r} must look like name=value")
        try:
            kwargs[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            kwargs[key] = raw  # a bare word is a string
    return kwargs


def _kwargs(ctx: Context) -> dict[str, Any]:
    kwargs = parse_kv(ctx.args.kwargs)
    if ctx.args.json_kwargs:
        try:
            extra = orjson.loads(ctx.args.json_kwargs)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"--json is not valid JSON: {exc}") from exc
        if not isinstance(extra, dict):
            raise InvalidRequest("--json must be a JSON object of keyword arguments")
        kwargs.update(extra)
    return kwargs


def call_local(ctx: Context, name: str, kwargs: dict[str, Any]) -> Any:
    """Call ``name`` here through the one call path (``globalfunc.invoke``), inline."""
    from globalfunc.catalog import Catalog
    from globalfunc.executor import InlineExecutor
    from globalfunc.invoke import Invoker
    from globalfunc.resolve import Resolver

    registry = ctx.gfbase.registry
    catalog = Catalog(registry, hint=LOCAL_HINT)
    invoker = Invoker(catalog, InlineExecutor(Resolver(registry), debug=ctx.args.debug))
    return invoker.call(name, (), kwargs)


def cmd_call(ctx: Context) -> int:
    kwargs = _kwargs(ctx)
    if ctx.args.url:
        from globalfunc.client import GFClient

        with GFClient(ctx.args.url, token=ctx.token()) as client:
            result = client.call(ctx.args.name, **kwargs)
    else:
        result = call_local(ctx, ctx.args.name, kwargs)
    out(orjson.dumps(result, default=str, option=orjson.OPT_NON_STR_KEYS).decode())
    return EXIT_OK


def add_parsers(add: Any, _sub: Any = None) -> None:
    """The ``call`` command's parser."""
    sp = add(
        "call",
        cmd_call,
        "call a function: gf call Base.inverse_time_str time_str=... bias_hours=-8",
    )
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("kwargs", nargs="*", metavar="KEY=VALUE", help="values are JSON, else strings")
    sp.add_argument("--json", dest="json_kwargs", metavar="OBJECT", help="kwargs as a JSON object")
    sp.add_argument("--url", help="call a GlobalFunc server instead of in-process")
