"""``gf aiges serve|create|check|libpath``: the AIGES plugin and project tooling.

Building these parsers imports nothing of ``server.aiges``: ``gf aiges serve`` passes
its arguments through unparsed, and the command parses them with the plugin's own
option parser (``server.aiges.options``) when it runs, so ``gf aiges serve --help``
shows the plugin's options.

Not here: the plugin (``server.aiges``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from globalfunc.cli.context import EXIT_ERROR, EXIT_OK, Context, Parser, out

__all__ = ["add_parsers"]


def cmd_aiges_serve(ctx: Context) -> int:
    from server.aiges.launch import run
    from server.aiges.options import make_parser

    parser = make_parser(
        Parser(
            prog="gf aiges serve",
            description="run the gRPC plugin (what aiges.toml's pythonPluginCmd starts)",
        )
    )
    args = parser.parse_args(ctx.args.passthrough)
    if args.function and not args.root:
        args.root = str(ctx.root)
    return run(args)


def cmd_aiges_create(ctx: Context) -> int:
    from server.aiges.scaffold import create_project

    path = create_project(ctx.args.name, ctx.args.dir)
    out(f"created AIGES project {path}; check it with: gf aiges check {path}")
    return EXIT_OK


def cmd_aiges_check(ctx: Context) -> int:
    from server.aiges.scaffold import check_project

    problems = check_project(ctx.args.project)
    for problem in problems:
        sys.stderr.write(f"gf: aiges check: {problem}\n")
    if problems:
        return EXIT_ERROR
    out(f"{ctx.args.project}: wrapper imports, inits and answers its test data correctly")
    return EXIT_OK


def cmd_aiges_libpath(ctx: Context) -> int:
    from server.aiges.native import libwrapper_path, why_missing

    path = libwrapper_path()
    if not path.is_file():
        sys.stderr.write(f"gf: aiges libpath: {why_missing('libwrapper')}\n")
        return EXIT_ERROR
    out(str(path.parent))
    return EXIT_OK


def add_parsers(add: Any, sub: Any) -> None:
    """The ``aiges`` command group's parsers."""
    aiges = sub.add_parser(
        "aiges", help="AIGES: serve as a loader plugin, create or check a project"
    )
    asub = aiges.add_subparsers(dest="aiges_command", metavar="COMMAND", parser_class=Parser)
    asub.required = True
    serve = asub.add_parser(
        "serve",
        help="run the gRPC plugin (what aiges.toml's pythonPluginCmd starts)",
        add_help=False,  # --help goes to the plugin's own parser
    )
    serve.set_defaults(func=cmd_aiges_serve, passthrough=[])
    create = asub.add_parser("create", help="make a new AIGES project that runs as generated")
    create.add_argument("-n", "--name", required=True)
    create.add_argument("--dir", default=".", help="parent folder (default: current folder)")
    create.set_defaults(func=cmd_aiges_create)
    check = asub.add_parser(
        "check", help="import, init and once-exec a project's wrapper on its test data"
    )
    check.add_argument("project", metavar="DIR")
    check.set_defaults(func=cmd_aiges_check)
    libpath = asub.add_parser(
        "libpath",
        help="print the folder holding libwrapper.so (the loader's C mode): put it on "
        "LD_LIBRARY_PATH",
    )
    libpath.set_defaults(func=cmd_aiges_libpath)


def take_passthrough(args: argparse.Namespace, extra: list[str]) -> bool:
    """Give ``gf aiges serve`` the arguments ``gf``'s parser did not know; whether taken."""
    if getattr(args, "func", None) is not cmd_aiges_serve:
        return False
    args.passthrough = list(extra)
    return True
