"""Run the HTTP server until SIGINT/SIGTERM: the function ``gf serve`` calls.

``serve`` opens the registry (the embedded SQLite store of the packages root unless a
storage URL is given), builds the executor (``inline`` or an ``isolated`` worker pool),
binds the socket, optionally forks ``processes`` copies sharing it, prints one
``GlobalFunc serving http://HOST:PORT/ (...)`` line when it is ready, and shuts down
cleanly on a signal (stop accepting, close connections, stop workers).

It takes plain values: reading ``GF_*`` settings is the CLI's job. It does not scan or
save functions: only what is already registered is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.process

from globalfunc.errors import ConfigError, GlobalFuncError
from globalfunc.executor import (
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_TIMEOUT,
    Executor,
    InlineExecutor,
    IsolatedExecutor,
    WorkerTarget,
)
from globalfunc.naming import DEFAULT_TIER1
from globalfunc.registry import Registry
from globalfunc.storage.base import redact_url
from server.aiges.ase_http import AseServices, ase_openapi, ase_routes, load_wrappers
from server.http.app import make_app
from server.http.state import DEFAULT_MAX_BODY, hard_body_limit

__all__ = ["MODES", "build_executor", "serve"]

log = logging.getLogger(__name__)
MODES = ("inline", "isolated")


def _detect_branch(root: Path) -> str:
    """The packages root's git branch (what ``gf save`` saved under), else ``master``."""
    from globalfunc.workspace import Workspace

    try:
        return Workspace(root).current_branch()
    except GlobalFuncError:
        return "master"


def build_executor(
    mode: str,
    registry: Registry,
    *,
    storage_url: str,
    workers: int | None = None,
    call_timeout: float = DEFAULT_TIMEOUT,
    timeouts: Mapping[str, float] | None = None,
    memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
    cache_dir: Path | None = None,
    debug: bool = False,
) -> Executor:
    """An executor over ``registry`` (inline) or over workers opening ``storage_url``."""
    if mode == "inline":
        from gfgo.resolve import Resolver

        return InlineExecutor(Resolver(registry, cache_dir=cache_dir), debug=debug)
    if mode == "isolated":
        target = WorkerTarget(
            registry_url=storage_url,
            tier1=registry.tier1,
            branch=registry.branch,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
        return IsolatedExecutor(
            target,
            workers=workers or 2,
            timeout=call_timeout,
            timeouts=timeouts,
            memory_limit_mb=memory_limit_mb,
            debug=debug,
        )
    raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}")


def serve(
    root: Path,
    *,
    storage_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    processes: int = 1,
    mode: str = "isolated",
    workers: int | None = None,
    token: str | None = None,
    allow_packages: list[str] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    call_timeout: float = DEFAULT_TIMEOUT,
    timeouts: Mapping[str, float] | None = None,
    memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
    cors_origins: list[str] | None = None,
    debug: bool = False,
    tier1: str = DEFAULT_TIER1,
    branch: str | None = None,
    cache_dir: Path | None = None,
    extra_routes: Sequence[tuple[Any, ...]] = (),
    aiges_wrappers: Sequence[str | os.PathLike[str]] = (),
    on_ready: Callable[[str], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve the registered functions of ``root`` over HTTP until SIGINT or SIGTERM.

    ``port=0`` picks a free port (the printed line shows it). ``processes > 1`` forks
    that many server processes sharing the socket (each with its own executor and
    metrics). ``workers`` is the isolated pool size per process (default 2).

    Every server also speaks the AIGES ase protocol (:mod:`server.aiges.ase_http`):
    ``POST /<version>/private/<call name>`` and ``POST /v1/<call name>`` call the exposed
    registry functions through the same executor, and ``aiges_wrappers`` (wrapper dirs,
    ``wrapper.py`` files or ``gf aiges create`` projects) add wrapper.py services under their
    ``serviceId``, loaded after any fork: each in its own plugin process in isolated mode
    (with the call timeout and memory cap), inside the server process in inline mode.

    ``on_ready(url)`` runs in each server process once it listens; ``on_stop()`` when a
    stop signal arrives, before the server stops accepting (``gf worker`` deregisters).
    """
    if mode not in MODES:
        raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if processes < 1:
        raise ConfigError(f"processes must be at least 1, got {processes}")
    if max_body < 1:
        raise ConfigError(f"max_body must be at least 1, got {max_body}")
    if call_timeout <= 0:
        raise ConfigError(f"call_timeout must be positive, got {call_timeout}")
    root = Path(root).resolve()
    if storage_url is None:
        from gfbase.facade import default_storage_url

        storage_url = default_storage_url(root)
    branch = branch or _detect_branch(root)
    try:
        sockets = tornado.netutil.bind_sockets(port, host, reuse_port=False)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another address "
            "with --host/--port (GF_HOST/GF_PORT; make run HOST=... PORT=...)"
        ) from exc
    bound_port = sockets[0].getsockname()[1]
    task = None
    if processes > 1:
        previous = signal.signal(signal.SIGTERM, _stop_supervisor)
        try:
            task = tornado.process.fork_processes(processes, max_restarts=100)
        except (KeyboardInterrupt, SystemExit):
            # The supervisor: its children stop on their own SIGINT, or on the SIGTERM
            # the kernel sends them when it exits (see _die_with_parent).
            sockets[0].close()
            return
        signal.signal(signal.SIGTERM, previous)  # a server process: the loop handles it
        _die_with_parent()
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{bound_port}/"
    banner = (
        f"GlobalFunc serving {url} (root {root}, storage {redact_url(storage_url)}, "
        f"mode {mode}, branch {branch}"
        + (f", processes {processes}" if processes > 1 else "")
        + ")"
    )
    asyncio.run(
        _run(
            sockets,
            root=root,
            storage_url=storage_url,
            mode=mode,
            workers=workers,
            token=token,
            allow_packages=allow_packages,
            max_body=max_body,
            call_timeout=call_timeout,
            timeouts=timeouts,
            memory_limit_mb=memory_limit_mb,
            cors_origins=cors_origins,
            debug=debug,
            tier1=tier1,
            branch=branch,
            cache_dir=cache_dir,
            extra_routes=extra_routes,
            aiges_wrappers=aiges_wrappers,
            announce=banner if task in (None, 0) else None,
            url=url,
            on_ready=on_ready,
            on_stop=on_stop,
        )
    )


async def _run(
    sockets: list[Any],
    *,
    root: Path,
    storage_url: str,
    mode: str,
    workers: int | None,
    token: str | None,
    allow_packages: list[str] | None,
    max_body: int,
    call_timeout: float,
    timeouts: Mapping[str, float] | None,
    memory_limit_mb: int | None,
    cors_origins: list[str] | None,
    debug: bool,
    tier1: str,
    branch: str,
    cache_dir: Path | None,
    extra_routes: Sequence[tuple[Any, ...]],
    aiges_wrappers: Sequence[str | os.PathLike[str]],
    announce: str | None,
    url: str,
    on_ready: Callable[[str], None] | None,
    on_stop: Callable[[], None] | None,
) -> None:
    registry = Registry.open(storage_url, tier1=tier1, branch=branch)
    executor = build_executor(
        mode,
        registry,
        storage_url=storage_url,
        workers=workers,
        call_timeout=call_timeout,
        timeouts=timeouts,
        memory_limit_mb=memory_limit_mb,
        cache_dir=cache_dir,
        debug=debug,
    )
    services: AseServices | None = None
    try:
        services = AseServices(
            load_wrappers(
                aiges_wrappers,
                isolated=mode == "isolated",
                call_timeout=call_timeout,
                memory_mb=memory_limit_mb,
            )
        )
        app = make_app(
            registry,
            executor,
            token=token,
            allow_packages=allow_packages,
            max_body=max_body,
            cors_origins=cors_origins,
            debug=debug,
            info={"root": str(root)},
            extra_routes=[*extra_routes, *ase_routes(services)],
            openapi_extensions=[functools.partial(ase_openapi, services)],
        )
        server = tornado.httpserver.HTTPServer(
            app, max_body_size=hard_body_limit(max_body), xheaders=False
        )
        server.add_sockets(sockets)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if announce is not None:
            sys.stdout.write(announce + "\n")
            sys.stdout.flush()
        log.info("listening on %s (mode %s)", url, mode)
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
        if on_stop is not None:
            on_stop()
        log.info("stopping: no new connections, closing open ones")
        server.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close_all_connections(), timeout=5.0)
    finally:
        if services is not None:
            services.close()
        executor.close()
        registry.close()


def _stop_supervisor(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _die_with_parent() -> None:
    """A forked server process gets SIGTERM when its supervisor dies (Linux prctl)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    except (OSError, AttributeError):  # not Linux: the supervisor's signals still reach us
        log.debug("prctl unavailable; forked processes will not follow a killed supervisor")
