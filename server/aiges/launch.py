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
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from server.aiges.engine import Engine
from server.aiges.options import make_parser

__all__ = [
    "COOKIE_MESSAGE",
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "PARENT_POLL_SECONDS",
    "PluginError",
    "StopClock",
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


PARENT_POLL_SECONDS = 0.2
"""How often both servers check that the parent (the loader) is still alive."""
STOP_GRACE_SECONDS = 0.5
"""How long in-flight rpcs may finish once the plugin stops."""
STOP_BUDGET_SECONDS = 1.1
"""From the decision to stop to the process's exit, whatever user code is doing. With the
parent poll this keeps the exit within 2 s of the loader's death or Shutdown."""
HARD_EXIT_SECONDS = 1.4
"""The last resort: a watchdog ends the process this long after the decision to stop."""


class PluginError(Exception):
    """The plugin cannot start: bad options, no free port, no engine, no native module."""


class StopClock:
    """Bounds the plugin's exit: started when it decides to stop (Shutdown, signal, parent
    gone), it gives each shutdown step what is left of :data:`STOP_BUDGET_SECONDS` and,
    as a last resort, ends the process after :data:`HARD_EXIT_SECONDS` even when a step
    hangs (a user call that never returns, a ``wrapperFini`` waiting on it).

    A user call cannot be interrupted from another thread, so a plugin whose user code is
    stuck leaves through ``os._exit`` (:meth:`exit`): interpreter shutdown would wait for
    that thread forever. ``hard_exit=False`` (in-process use, tests) only logs instead.
    """

    def __init__(self, *, hard_exit: bool = True) -> None:
        self.hard_exit = hard_exit
        self.started: float | None = None

    def start(self) -> None:
        """Start the clock and arm the watchdog (once)."""
        if self.started is not None:
            return
        self.started = time.monotonic()
        if self.hard_exit:
            threading.Thread(target=self._watchdog, name="aiges-exit-watchdog", daemon=True).start()

    def left(self, budget: float = STOP_BUDGET_SECONDS) -> float:
        """Seconds left of ``budget`` since :meth:`start`."""
        began = time.monotonic() if self.started is None else self.started
        return max(0.0, began + budget - time.monotonic())

    def _watchdog(self) -> None:
        time.sleep(self.left(HARD_EXIT_SECONDS))
        log.warning("the plugin did not stop within %.1fs; exiting now", HARD_EXIT_SECONDS)
        _exit_now(0)

    def call(self, what: str, fn: Callable[[], object]) -> None:
        """Run ``fn`` on a daemon thread, waiting only for what is left of the budget."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported below, on the caller's thread
                errors.append(exc)

        worker = threading.Thread(target=run, name=f"aiges-stop-{what}", daemon=True)
        worker.start()
        worker.join(self.left())
        if worker.is_alive():
            log.warning("%s did not finish within the stop budget; not waiting for it", what)
        elif errors:
            log.error("%s failed: %r", what, errors[0])

    def exit(self, code: int, *, stuck: bool = False) -> int:
        """Return ``code``, or end the process with it when user code is still running.

        ``stuck`` says a server already knows work is left (the C++ pool could not join a
        thread); otherwise a non-daemon Python thread still alive at the end of the budget
        counts as stuck.
        """
        for thread in _exit_blockers():
            thread.join(self.left())
            stuck = stuck or thread.is_alive()
        if stuck and self.hard_exit:
            log.warning("user code is still running; exiting without waiting for it")
            _exit_now(code)
        return code


def _exit_blockers() -> list[threading.Thread]:
    """The threads interpreter shutdown would wait for: non-daemon threads and every
    ``ThreadPoolExecutor`` worker (joined at exit even when daemon, as the user pool's are)."""
    from concurrent.futures import thread as executor_threads

    workers = set(getattr(executor_threads, "_threads_queues", {}))
    here, main = threading.current_thread(), threading.main_thread()
    return [
        t
        for t in threading.enumerate()
        if t is not here and t is not main and (not t.daemon or t in workers)
    ]


def _exit_now(code: int) -> None:
    """``os._exit`` after flushing what was logged and printed."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


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


def fini_quietly(engine: Engine, clock: StopClock | None = None) -> None:
    """The engine's ``fini`` at shutdown; a failure is logged, not raised. With a
    ``clock``, waits only for what is left of the stop budget (``fini`` may hang)."""
    if clock is not None:
        clock.call("engine fini", engine.fini)
        return
    try:
        engine.fini()
    except Exception:
        log.exception("engine fini failed")


def default_wrapper(cwd: str | Path, pythonpath: str = "") -> Path:
    """The ``wrapper.py`` ``python -m aiges.serve`` would import: in ``cwd``, else in the
    first ``PYTHONPATH`` folder that holds one; :class:`PluginError` naming where it looked."""
    folders = [Path(cwd), *(Path(p) for p in pythonpath.split(os.pathsep) if p)]
    for folder in folders:
        candidate = folder / "wrapper.py"
        if candidate.is_file():
            return candidate.resolve()
    raise PluginError(
        "no --wrapper or --function given and no wrapper.py in the current folder or on "
        f"PYTHONPATH (looked in: {', '.join(map(str, folders))}); run it from your wrapper's "
        "folder, or pass --wrapper DIR_OR_FILE or --function Package.func"
    )


def build_engine(
    wrapper: str | None = None,
    function: str | None = None,
    root: str | None = None,
    service_id: str | None = None,
) -> Engine:
    """The engine the options name: a wrapper file/dir, or a function under a packages root.

    With neither, the ``wrapper.py`` of the current folder or ``PYTHONPATH`` (as
    ``python -m aiges.serve`` does), so a loader's ``pythonPluginCmd`` changes one word.
    """
    if wrapper and function:
        raise PluginError("give one of --wrapper DIR_OR_FILE or --function Package.func, not both")
    if not (wrapper or function):
        wrapper = str(default_wrapper(os.getcwd(), os.environ.get("PYTHONPATH", "")))
        log.info("hosting %s (no --wrapper given)", wrapper)
    if wrapper:
        from server.aiges.wrapper_host import WrapperEngine

        # This process is the plugin: the wrapper's own `server` module must win over ours.
        return WrapperEngine(wrapper, isolate_imports=True)
    from server.aiges.function_host import FunctionEngine, open_functions

    assert function is not None
    # The packages folder is scanned into an in-memory registry: calls take the one call
    # path (globalfunc.invoke), inline, since this process is the isolation boundary.
    # Records are written out for import under GF_CACHE_DIR (default: the user's cache).
    functions = open_functions(root or "packages", cache_dir=os.environ.get("GF_CACHE_DIR") or None)
    return FunctionEngine(function, functions, service_id=service_id)


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
        from server.aiges.native import missing_part

        missing_part("server.aiges._native", exc.__cause__ or exc)  # once; raises if required
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
