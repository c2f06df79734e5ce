"""The AIGES plugin process's entry point: options in, engine built, one of two servers run.

``python -m server.aiges`` and ``gf aiges serve`` come here. The environment is read here,
at the edge. Nothing in this module imports grpc: the Python server
(:mod:`server.aiges.plugin`, grpcio) is imported only when it is chosen, and the C++
server (:mod:`server.aiges.native`, chosen by ``--server auto`` whenever it is built)
must not share its process with grpcio's own copy of the gRPC core.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from server.aiges.engine import Engine
from server.aiges.options import make_parser

__all__ = [
    "COOKIE_MESSAGE",
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "PluginError",
    "build_engine",
    "handshake",
    "main",
    "port_range",
    "run",
]

log = logging.getLogger(__name__)

CORE_PROTOCOL = 1
APP_PROTOCOL = 1

MAGIC_COOKIE_KEY = "BASIC_PLUGIN"
MAGIC_COOKIE_VALUE = "hello"

COOKIE_MESSAGE = (
    "This is an AIGES plugin (go-plugin protocol). It is meant to be started by the AIGES "
    "loader, which sets BASIC_PLUGIN=hello; it was started without that magic cookie.\n"
    "To serve it by hand anyway (debugging with your own gRPC client), add --no-cookie."
)


class PluginError(Exception):
    """The plugin cannot start: bad options, no free port, no engine, no native module."""


# -- process rules both servers follow ----------------------------------------------------------
def cookie_missing(env: Mapping[str, str], required: bool) -> bool:
    """True (after explaining on stderr) when the loader's magic cookie is required but absent."""
    if required and env.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        print(COOKIE_MESSAGE, file=sys.stderr)
        return True
    return False


def port_range(env: Mapping[str, str]) -> tuple[int, int] | None:
    """``PLUGIN_MIN_PORT..PLUGIN_MAX_PORT`` from the loader's env, or ``None`` when unset."""
    low, high = env.get("PLUGIN_MIN_PORT"), env.get("PLUGIN_MAX_PORT")
    if not (low and high):
        return None
    try:
        first, last = int(low), int(high)
    except ValueError as exc:
        raise PluginError(
            f"PLUGIN_MIN_PORT/PLUGIN_MAX_PORT must be integers, got {low!r}/{high!r}"
        ) from exc
    if not 0 < first <= last <= 65535:
        raise PluginError(f"PLUGIN_MIN_PORT..PLUGIN_MAX_PORT = {first}..{last} is not a port range")
    return first, last


@contextlib.contextmanager
def handshake(out: TextIO | None = None) -> Iterator[Callable[[str, int], None]]:
    """Keep stdout for the handshake: inside, ``print`` goes to stderr (user imports, SDK
    banners must not precede the handshake); call the yielded ``announce(host, port)`` to
    write the go-plugin line, after which stdout is stdout again."""
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    target = out or real_stdout

    def announce(host: str, port: int) -> None:
        target.write(f"{CORE_PROTOCOL}|{APP_PROTOCOL}|tcp|{host}:{port}|grpc\n")
        target.flush()
        sys.stdout = real_stdout

    try:
        yield announce
    finally:
        sys.stdout = real_stdout


@contextlib.contextmanager
def on_stop_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """Call ``stop(reason)`` on SIGTERM/SIGINT while inside (main thread only)."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, _f: stop(f"signal {signum}"))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def fini_quietly(engine: Engine) -> None:
    """The engine's ``fini`` at shutdown; a failure is logged, not raised."""
    try:
        engine.fini()
    except Exception:
        log.exception("engine fini failed")


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


def choose_server(choice: str) -> str:
    """``native`` or ``python`` for ``--server``; ``auto`` is native when its module loads.

    Checked before user code loads, so ``--server native`` without the module built fails
    at once with how to build it.
    """
    if choice == "python":
        return choice
    from server.aiges.native import load_native

    try:
        load_native()
    except PluginError as exc:
        if choice == "native":
            raise
        log.info("serving on the Python gRPC server: %s", exc)
        return "python"
    return "native"


def run(args: argparse.Namespace) -> int:
    """Run the plugin for parsed options (shared by ``main`` and the ``gf`` CLI)."""
    _configure_logging(args.log_file, args.log_level)
    if cookie_missing(os.environ, not args.no_cookie):
        return 1
    try:
        server = choose_server(args.server)
    except PluginError as exc:
        print(f"aiges plugin: {exc}", file=sys.stderr)
        return 1
    try:
        engine = build_engine(args.wrapper, args.function, args.root, args.service_id)
    except Exception as exc:
        print(f"aiges plugin: {exc}", file=sys.stderr)
        return 1
    options = {
        "workers": args.workers,
        "host": args.host,
        "require_cookie": not args.no_cookie,
        "error_details": args.error_details,
    }
    if server == "native":
        from server.aiges.native import serve_native

        return serve_native(engine, **options)
    from server.aiges.plugin import serve_plugin

    return serve_plugin(engine, **options)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m server.aiges``."""
    args: Any = make_parser().parse_args(argv)
    return run(args)
