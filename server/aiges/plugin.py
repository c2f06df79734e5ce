"""The AIGES plugin on the Python gRPC server (grpcio); :mod:`server.aiges.launch` starts it.

go-plugin rules it follows: refuse to run without the magic cookie ``BASIC_PLUGIN=hello``
(unless ``--no-cookie``); bind a port from ``PLUGIN_MIN_PORT``..``PLUGIN_MAX_PORT`` (first
free one, no ``SO_REUSEPORT``) or an ephemeral one; print ``1|1|tcp|127.0.0.1:<port>|grpc``
as the very first stdout line; serve health ``plugin`` = SERVING, ``GRPCController.Shutdown``
and ``GRPCStdio.StreamStdio`` next to ``aiges.WrapperService``. It exits on Shutdown,
SIGTERM/SIGINT, or when its parent (the loader) dies, within 2 s in every case, also
while user code hangs (:class:`~server.aiges.launch.StopClock`). Logs go to stderr or
``--log-file``, never stdout.

The C++ server (:mod:`server.aiges.native`, ``--native``) follows the same rules.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent import futures
from typing import TextIO

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from globalfunc.errors import ConfigError
from server.aiges.engine import Engine
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
from server.aiges.native import AigesLimits, aiges_limits
from server.aiges.proto import plugin_pb2, plugin_pb2_grpc
from server.aiges.servicer import WrapperServicer, add_wrapper_service

__all__ = ["bind_port", "serve_plugin"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 2**31 - 1
SWITCH_INTERVAL = 0.001
"""GIL switch interval for the plugin process. Every result crosses threads (gRPC handler ->
user pool -> communicate stream); at CPython's default 5 ms a woken thread can wait that long
for the GIL, which dominates latency with several requests in flight."""


class _Controller(plugin_pb2_grpc.GRPCControllerServicer):
    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def Shutdown(
        self, request: plugin_pb2.Empty, context: grpc.ServicerContext
    ) -> plugin_pb2.Empty:
        log.info("Shutdown requested by the loader")
        # Let this reply go out before the server stops.
        threading.Timer(0.05, self._stop.set).start()
        return plugin_pb2.Empty()


class _Stdio(plugin_pb2_grpc.GRPCStdioServicer):
    """go-plugin's stdio stream. Our output already reaches the loader through the
    process's stdout/stderr pipes, so the stream stays open and carries nothing."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def StreamStdio(
        self, request: empty_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[plugin_pb2.StdioData]:
        while context.is_active() and not self._stop.wait(0.5):
            pass
        return
        yield  # a generator: makes this a server-streaming handler


def keepalive_options(limits: AigesLimits) -> list[tuple[str, int]]:
    """grpcio's server options that drop a peer no longer answering pings (the C++ server
    sets the same): pings go out also while no data flows, as a stalled upload sends none."""
    if limits.keepalive_ms <= 0:
        return []
    return [
        ("grpc.keepalive_time_ms", limits.keepalive_ms),
        ("grpc.keepalive_timeout_ms", limits.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", min(limits.keepalive_ms, 10_000)),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def bind_port(server: grpc.Server, host: str, env: Mapping[str, str]) -> int:
    """Bind ``server`` to the first free port of the env's range, else an ephemeral port."""
    ports = port_range(env)
    if ports is not None:
        first, last = ports
        for port in range(first, last + 1):
            try:
                if server.add_insecure_port(f"{host}:{port}") == port:
                    return port
            except RuntimeError:
                continue
        raise PluginError(f"no free port in PLUGIN_MIN_PORT..PLUGIN_MAX_PORT = {first}..{last}")
    port = int(server.add_insecure_port(f"{host}:0"))
    if not port:
        raise PluginError(f"cannot bind an ephemeral port on {host}")
    return port


def serve_plugin(
    engine: Engine,
    *,
    workers: int = 4,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    require_cookie: bool = True,
    handshake_out: TextIO | None = None,
    watch_parent: bool = True,
    switch_interval: float | None = SWITCH_INTERVAL,
    error_details: bool = False,
    hard_exit: bool = True,
) -> int:
    """Run the plugin until Shutdown, a signal or the parent's death; returns the exit code.

    ``env`` defaults to ``os.environ``; ``handshake_out`` (default ``sys.stdout``) receives
    only the handshake line. With ``hard_exit`` (the plugin process), user code still
    running at the end of the stop budget ends the process instead of blocking its exit.
    """
    env = os.environ if env is None else env
    if cookie_missing(env, require_cookie):
        return 1
    if switch_interval:
        sys.setswitchinterval(switch_interval)
    stop = threading.Event()
    # A signal handler only appends (Event.set from a handler can deadlock on the event's
    # own lock); the main loop below polls for it, for Shutdown and for the parent.
    stopping: list[str] = []
    with on_stop_signals(stopping.append):
        with handshake(handshake_out) as announce:
            try:
                limits = aiges_limits(env)
            except ConfigError as exc:
                print(f"aiges plugin: {exc}", file=sys.stderr)
                return 1
            servicer = WrapperServicer(
                engine,
                workers=workers,
                error_details=error_details,
                queue_bytes=limits.queue_bytes,
            )
            handlers = futures.ThreadPoolExecutor(
                max_workers=max(16, 2 * workers + 8), thread_name_prefix="aiges-grpc"
            )
            server = grpc.server(
                handlers,
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE),
                    ("grpc.max_send_message_length", MAX_MESSAGE),
                    ("grpc.so_reuseport", 0),
                    *keepalive_options(limits),
                ],
            )
            add_wrapper_service(servicer, server)  # wrapperOnceExec: our deserializer
            health_servicer = health.HealthServicer()
            health_servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
            health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
            plugin_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(stop), server)
            plugin_pb2_grpc.add_GRPCStdioServicer_to_server(_Stdio(stop), server)
            try:
                port = bind_port(server, host, env)
            except PluginError as exc:
                print(f"aiges plugin: {exc}", file=sys.stderr)
                return 1
            server.start()
            parent = os.getppid()
            announce(host, port)
        log.info("aiges plugin serving on %s:%d with %d workers", host, port, workers)
        clock = StopClock(hard_exit=hard_exit)
        try:
            while not stopping:
                if stop.wait(PARENT_POLL_SECONDS):
                    stopping.append("Shutdown requested by the loader")
                elif watch_parent and os.getppid() != parent:
                    stopping.append(f"parent process {parent} is gone")
            log.info("aiges plugin stopping: %s", stopping[0])
        finally:
            clock.start()
            stop.set()  # ends the stdio stream (set here, never in a signal handler)
            health_servicer.enter_graceful_shutdown()
            servicer.close()  # handlers waiting on user code give up now
            server.stop(grace=STOP_GRACE_SECONDS).wait(clock.left())
            handlers.shutdown(wait=False, cancel_futures=True)
            fini_quietly(engine, clock)
    return clock.exit(0)
