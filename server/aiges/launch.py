"""The AIGES plugin process's entry point: options in, engine built, one of two servers run.

``python -m server.aiges`` and ``gf aiges serve`` come here. The environment is read here,
at the edge. Nothing in this module imports grpc: the Python server
(:mod:`server.aiges.plugin`, grpcio) is imported only when it is chosen, and the C++
server (``--native``, :mod:`server.aiges.native`) must not share its process with
grpcio's own copy of the gRPC core.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from server.aiges.engine import Engine
from server.aiges.options import make_parser

__all__ = [
    "COOKIE_MESSAGE",
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "PluginError",
    "build_engine",
    "main",
    "run",
]

MAGIC_COOKIE_KEY = "BASIC_PLUGIN"
MAGIC_COOKIE_VALUE = "hello"

COOKIE_MESSAGE = (
    "This is an AIGES plugin (go-plugin protocol). It is meant to be started by the AIGES "
    "loader, which sets BASIC_PLUGIN=hello; it was started without that magic cookie.\n"
    "To serve it by hand anyway (debugging with your own gRPC client), add --no-cookie."
)


class PluginError(Exception):
    """The plugin cannot start: bad options, no free port, no engine, no native module."""


def build_engine(
    wrapper: str | None = None,
    function: str | None = None,
    root: str | None = None,
    service_id: str | None = None,
) -> Engine:
    """The engine the options name: a wrapper file/dir, or a function under a packages root."""
    if bool(wrapper) == bool(function):
        raise PluginError("give exactly one of --wrapper DIR_OR_FILE or --function Package.func")
    if wrapper:
        from server.aiges.wrapper_host import WrapperEngine

        return WrapperEngine(wrapper)
    from server.aiges.function_host import FunctionEngine, packages_resolver

    assert function is not None
    return FunctionEngine(function, packages_resolver(root or "packages"), service_id=service_id)


def _configure_logging(log_file: str | None, level: str) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def run(args: argparse.Namespace) -> int:
    """Run the plugin for parsed options (shared by ``main`` and the ``gf`` CLI)."""
    _configure_logging(args.log_file, args.log_level)
    if not args.no_cookie and os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        print(COOKIE_MESSAGE, file=sys.stderr)
        return 1
    if args.native:
        from server.aiges.native import load_native

        try:
            load_native()  # fail before loading user code when the module is not built
        except PluginError as exc:
            print(f"aiges plugin: {exc}", file=sys.stderr)
            return 1
    try:
        engine = build_engine(args.wrapper, args.function, args.root, args.service_id)
    except Exception as exc:
        print(f"aiges plugin: {exc}", file=sys.stderr)
        return 1
    if args.native:
        from server.aiges.native import serve_native

        return serve_native(
            engine,
            workers=args.workers,
            host=args.host,
            require_cookie=not args.no_cookie,
            error_details=args.error_details,
        )
    from server.aiges.plugin import serve_plugin

    return serve_plugin(
        engine,
        workers=args.workers,
        host=args.host,
        require_cookie=not args.no_cookie,
        error_details=args.error_details,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m server.aiges``."""
    args: Any = make_parser().parse_args(argv)
    return run(args)
