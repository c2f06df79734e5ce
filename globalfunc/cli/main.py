"""``gf``'s parser and entry point: dispatch to a command, turn every error into one line.

A user error (any :mod:`globalfunc.errors` class, a bad ``GF_*`` setting, a file system
error) prints ``gf: error: ...`` and exits 1; a usage error exits 2; anything else is
reported as one line naming the exception and ``--debug``, which shows tracebacks.

``GF_TOKEN`` leaves the environment as soon as the settings have read it, so no process
``gf`` starts inherits the token.

Building the parser imports no edge (``server``, ``gfbase``, ``gfgo``): each command
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from globalfunc.cli import aiges, call, mapping, registry, serving
from globalfunc.cli.context import EXIT_ERROR, EXIT_USAGE, Context, Parser
from globalfunc.errors import GlobalFuncError
from globalfunc.settings import Settings

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="gf", description="GlobalFunc: share, version, find and serve functions.")
    p.add_argument("--root", help="packages root (default: $GF_ROOT or the current folder)")
    p.add_argument("--tier1", help="registry space (default: $GF_TIER1 or sp_GlobalFunc)")
    p.add_argument("--storage", help="storage URL (default: $GF_STORAGE_URL or embedded SQLite)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def add(name: str, func: Callable[[Context], int], help: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    for module in (registry, call, serving, mapping, aiges):
        module.add_parsers(add, sub)
    return p


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, GlobalFuncError):
        return exc.message
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return f"setting GF_{where.upper()}: {first.get('msg')}"
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        where = f": {exc.filename!r}" if exc.filename is not None else ""
        return f"{what}{where}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"unexpected {type(exc).__name__}: {text} (run with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not aiges.take_passthrough(args, extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    ctx: Context | None = None
    try:
        settings = Settings()
        # Read once; now out of the environment before anything starts a child (GitPython's
        # long-lived ``git cat-file``, the server's workers): a process of the same user
        # could read it in /proc/<child>/environ. GF_TOKEN_FILE holds only a path.
        os.environ.pop("GF_TOKEN", None)
        os.environ.pop("GF_WRITE_TOKEN", None)
        if not settings.semantic:
            from globalfunc import search

            search.set_reranker(None)
        ctx = Context(args, settings)
        return int(args.func(ctx))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        sys.stderr.write(f"gf: error: {_one_line(exc)}\n")
        return EXIT_ERROR
    finally:
        if ctx is not None:
            try:
                ctx.close()
            except Exception as exc:  # closing must not hide the command's own outcome
                sys.stderr.write(f"gf: error: while closing: {_one_line(exc)}\n")
