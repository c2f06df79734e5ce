"""The AIGES plugin on the C++ gRPC server (``--native``): loading it and the Python it calls.

The C++ extension ``server/aiges/_native*.so`` (source ``native/aiges/plugin_server.cc``,
built by ``pip install`` through setup.py) serves the whole protocol: ``aiges.WrapperService``, go-plugin's
controller and stdio services, and gRPC health. It enters Python only to run the engine,
through :class:`Bridge`, whose methods take and return plain values so the C++ side needs
no protobuf in Python. The process rules are the Python plugin's
(:mod:`server.aiges.plugin`): cookie, a port from ``PLUGIN_MIN_PORT``..``PLUGIN_MAX_PORT``
or an ephemeral one, the handshake as the first stdout line, exit on Shutdown, on
SIGTERM/SIGINT or when the parent dies, within 2 s also while user code hangs (the C++
server stops waiting for it and reports the threads it had to leave behind;
:class:`~server.aiges.launch.StopClock` then ends the process).

Limits of both servers (:func:`aiges_limits`): ``GF_AIGES_QUEUE_MB`` bounds the whole
serialized once-exec requests waiting for or in user code (one over it is refused with gRPC
RESOURCE_EXHAUSTED on that call) and the results waiting for ``communicate`` (the grpcio
server's side: :mod:`server.aiges.queues`); ``GF_AIGES_KEEPALIVE_S`` /
``GF_AIGES_KEEPALIVE_TIMEOUT_S`` drop a peer that stops answering pings (a frozen loader
mid-upload; grpcio is given the same options, but did not drop one in our test).

This module also knows which native parts the install built (``native-build.json``, written
by setup.py) and says once what is missing and how to get it; ``GF_REQUIRE_NATIVE=1`` turns
a missing part into a :class:`PluginError`.

Nothing here imports grpc: grpcio carries its own copy of the gRPC core, and the two must
not meet in one process.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from globalfunc.errors import ConfigError
from server.aiges.engine import (
    EXEC_FAILED,
    INIT_FAILED,
    Engine,
    Frame,
    Outcome,
    normalise,
    with_error_detail,
)
from server.aiges.launch import (
    PARENT_POLL_SECONDS,
    STOP_GRACE_SECONDS,
    PluginError,
    StopClock,
    cookie_missing,
    fini_quietly,
    handshake,
    on_stop_signals,
    port_range,
)

__all__ = [
    "REQUIRE_ENV",
    "AigesLimits",
    "Bridge",
    "aiges_limits",
    "build_report",
    "libwrapper_path",
    "load_native",
    "missing_part",
    "native_required",
    "say_missing",
    "serve_native",
    "why_missing",
]

log = logging.getLogger(__name__)

Item = tuple[str, bytes, int, int, dict[str, str]]
"""A frame as the C++ server passes it: ``(key, data, type, status, desc)``."""

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


REQUIRE_ENV = "GF_REQUIRE_NATIVE"
"""Set to 1 (``make test`` does) and a native part that is not built is an error."""

PARTS = {
    "server.aiges._native": "the C++ gRPC plugin server",
    "server.aiges._embed": "aiges_embed in C++ (zero-copy request data)",
    "libwrapper": "libwrapper.so (the loader's C mode)",
}
"""The native parts ``pip install`` builds (setup.py), by the names its report uses."""

INSTEAD = {
    "server.aiges._native": "the plugin is served on the Python gRPC server (grpcio) instead",
    "server.aiges._embed": "the pure-Python aiges_embed is used instead",
    "libwrapper": (
        "the loader's C mode cannot be used until it is built (it has no pure-Python fallback)"
    ),
}
"""What happens without each part, as the end of the line that says it is missing."""

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class AigesLimits:
    """The plugin servers' limits, from the environment (:func:`aiges_limits`)."""

    queue_bytes: int = 256 << 20
    keepalive_ms: int = 30_000
    keepalive_timeout_ms: int = 10_000


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also false for nan
        raise ConfigError(
            f"{name}={raw!r} is not a number from {low:g} to {high:g}; fix or unset it"
        )
    return value


def aiges_limits(env: Mapping[str, str] | None = None) -> AigesLimits:
    """``GF_AIGES_QUEUE_MB`` (default 256), ``GF_AIGES_KEEPALIVE_S`` (30; 0 turns the
    server's pings off) and ``GF_AIGES_KEEPALIVE_TIMEOUT_S`` (10); :class:`ConfigError`
    naming the variable for a value out of range."""
    env = os.environ if env is None else env
    queue_mb = _number(env, "GF_AIGES_QUEUE_MB", 256, 1, 1 << 20)
    keepalive = _number(env, "GF_AIGES_KEEPALIVE_S", 30, 0, 86_400)
    timeout = _number(env, "GF_AIGES_KEEPALIVE_TIMEOUT_S", 10, 0.1, 3_600)
    return AigesLimits(int(queue_mb * (1 << 20)), int(keepalive * 1000), int(timeout * 1000))


_told: set[str] = set()


def native_required() -> bool:
    """True when ``GF_REQUIRE_NATIVE`` asks for every native part."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def build_report() -> dict[str, Any]:
    """What the last build of the native parts said (``native-build.json``), or ``{}``."""
    try:
        report = json.loads((_HERE / "native-build.json").read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def why_missing(part: str, error: object = None) -> str:
    """One line: which native part is missing, why, and how to get it."""
    reason = build_report().get("missing", {}).get(part) or (
        f"cannot load: {error}" if error else "not built"
    )
    return (
        f"{PARTS[part]} is not available ({reason}); install the build dependencies with "
        "scripts/system-deps.sh and reinstall GlobalFunc (pip install -e .)"
    )


def missing_part(part: str, error: object = None) -> None:
    """Say once that ``part`` is missing; with ``GF_REQUIRE_NATIVE=1`` raise instead."""
    message = why_missing(part, error)
    if native_required():
        raise PluginError(f"{REQUIRE_ENV}=1: {message}")
    if part not in _told:
        _told.add(part)
        log.warning("%s; %s", message, INSTEAD[part])


def say_missing() -> int:
    """Print one line per native part the install could not build; returns how many.

    ``make setup`` calls it after ``pip install``, whose output (and so setup.py's own
    report) pip hides without ``-v``. With ``GF_REQUIRE_NATIVE=1`` no fallback is named:
    the missing part is an error there."""
    missing = build_report().get("missing", {})
    for part in missing:
        if part not in PARTS:
            continue
        tail = "required by GF_REQUIRE_NATIVE=1" if native_required() else INSTEAD[part]
        print(f"GlobalFunc: {why_missing(part)}; {tail}", file=sys.stderr)
    return len(missing)


def libwrapper_path() -> Path:
    """Where ``libwrapper.so`` is (put its folder on ``LD_LIBRARY_PATH``); may not exist."""
    return _HERE / "lib" / "libwrapper.so"


def load_native() -> ModuleType:
    """The compiled server module, or :class:`PluginError` saying how to build it."""
    try:
        return importlib.import_module("server.aiges._native")
    except ImportError as exc:
        raise PluginError(
            f"{why_missing('server.aiges._native', exc)}; or serve on grpcio with --server python"
        ) from exc


def _frames(items: list[Item]) -> list[Frame]:
    return [Frame(key, data, type_, status, desc) for key, data, type_, status, desc in items]


def _items(frames: list[Frame]) -> list[Item]:
    """Normalised frames as tuples (``normalise`` already made every value plain)."""
    return [(f.key, f.data, f.type, f.status, f.desc) for f in frames]


class Bridge:
    """What the C++ server calls, on its user pool threads with the GIL held.

    Every user-caused failure becomes a return code here (as in the Python servicer);
    ``schema`` alone raises, which the server turns into an INTERNAL gRPC status. Every
    result passes :func:`~server.aiges.engine.normalise` (the grpcio servicer's rule), so
    the values the C++ side converts are always in range.
    """

    def __init__(self, engine: Engine, *, error_details: bool = False) -> None:
        self.engine = engine
        self.error_details = error_details

    def _failed(self, tag: str, outcome: Outcome) -> Outcome:
        log.warning("result for tag %s: ret %s %s", tag, outcome.ret, outcome.message)
        return with_error_detail(outcome) if self.error_details else outcome

    def bind(self, emit: Callable[[str, int, list[Item]], None]) -> None:
        """Route session results pushed by user threads to the server's ``emit``."""

        def on_result(tag: str, outcome: Outcome) -> None:
            outcome = normalise(outcome)
            if outcome.ret:
                outcome = self._failed(tag, outcome)
            emit(tag, outcome.ret, _items(outcome.frames))

        self.engine.bind(on_result)

    def log(self, level: str, message: str) -> None:
        log.log(_LEVELS.get(level, logging.ERROR), "%s", message)

    def init(self, config: dict[str, str]) -> int:
        log.info("wrapperInit with %d config keys", len(config))
        try:
            return int(self.engine.init(config))
        except Exception:
            log.exception("engine init failed")
            return INIT_FAILED

    def schema(self, service_id: str) -> str:
        return json.dumps(self.engine.schema(service_id), ensure_ascii=False)

    def once(self, params: dict[str, str], items: list[Item], tag: str) -> tuple[int, list[Item]]:
        try:
            outcome = self.engine.once(params, _frames(items), tag)
        except Exception as exc:
            log.exception("once exec failed (tag %s)", tag)
            outcome = Outcome.failure(EXEC_FAILED, f"{type(exc).__name__}: {exc}")
        outcome = normalise(outcome)
        if outcome.ret:
            outcome = self._failed(tag, outcome)
        return outcome.ret, _items(outcome.frames)

    def create(self, params: dict[str, str], sid: str, tag: str) -> tuple[str, int]:
        try:
            handle, code = self.engine.create(params, sid, tag)
        except Exception:
            log.exception("create failed (tag %s)", tag)
            return "", EXEC_FAILED
        return str(handle), int(code)

    def write(self, handle: str, items: list[Item], sid: str) -> int:
        try:
            return int(self.engine.write(handle, _frames(items), sid))
        except Exception:
            log.exception("write failed (handle %s)", handle)
            return EXEC_FAILED

    def destroy(self, handle: str) -> int:
        try:
            return int(self.engine.destroy(handle))
        except Exception:
            log.exception("destroy failed (handle %s)", handle)
            return EXEC_FAILED


def serve_native(
    engine: Engine,
    *,
    workers: int = 4,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    require_cookie: bool = True,
    handshake_out: TextIO | None = None,
    watch_parent: bool = True,
    error_details: bool = False,
    hard_exit: bool = True,
) -> int:
    """Run the plugin on the C++ server until Shutdown, a signal or the parent's death.

    With ``hard_exit`` (the plugin process), user code still running at the end of the
    stop budget ends the process instead of blocking its exit."""
    env = os.environ if env is None else env
    if cookie_missing(env, require_cookie):
        return 1
    stopping: list[str] = []
    with on_stop_signals(stopping.append):
        with handshake(handshake_out) as announce:
            try:
                native = load_native()
                low, high = port_range(env) or (0, 0)
                limits = aiges_limits(env)
                server = native.NativeServer(
                    Bridge(engine, error_details=error_details),
                    host,
                    low,
                    high,
                    max(1, workers),
                    limits.queue_bytes,
                    limits.keepalive_ms,
                    limits.keepalive_timeout_ms,
                )
            except (PluginError, RuntimeError, ConfigError) as exc:
                print(f"aiges plugin: {exc}", file=sys.stderr)
                return 1
            parent = os.getppid()
            announce(host, server.port)
        log.info(
            "aiges plugin (native, grpc++ %s) serving on %s:%d with %d workers",
            native.grpc_version,
            host,
            server.port,
            workers,
        )
        clock = StopClock(hard_exit=hard_exit)
        left_behind = 0
        try:
            while not stopping:
                if server.wait_shutdown(PARENT_POLL_SECONDS):
                    stopping.append("Shutdown requested by the loader")
                elif watch_parent and os.getppid() != parent:
                    stopping.append(f"parent process {parent} is gone")
            log.info("aiges plugin stopping: %s", stopping[0])
        finally:
            clock.start()
            grace = min(STOP_GRACE_SECONDS, clock.left())
            left_behind = server.stop(grace, max(0.0, clock.left() - grace - 0.1))
            if left_behind:
                log.warning("%d user call(s) still running at exit", left_behind)
            fini_quietly(engine, clock)
    return clock.exit(0, stuck=left_behind > 0)
