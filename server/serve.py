"""Run the HTTP server until SIGINT/SIGTERM: the function ``gf serve`` calls.

``serve`` opens the registry (the embedded SQLite store of the packages root unless a
storage URL is given), builds the executor (``inline`` or an ``isolated`` worker pool),
binds the socket, optionally forks ``processes`` copies sharing it, prints one
``GlobalFunc serving http://HOST:PORT/ (...)`` line when it is ready, and shuts down
cleanly on a signal, in under 5 s: stop accepting, stop the workers (calls still queued
answer 503 ``Overloaded``, "the server is stopping": nothing ran; calls a worker process was
running answer 502 ``Interrupted``: they may have run in part), then close the connections.

Guarding the edge: it refuses to listen on a non-loopback address without a token unless
told ``insecure``; it cuts uploads slower than ``body_timeout`` and keep-alive connections
idle for ``idle_timeout``; on Linux it makes the server process non-dumpable, so that
another process of the same user can neither ptrace it nor read ``/proc/<pid>/environ``
or its memory (where the token is); and it takes ``GF_TOKEN`` out of ``os.environ``, so
no process it starts inherits it. It raises its soft limit on open files to the hard one,
and out of descriptors it pauses accepting for a moment instead of spinning on ``accept``
(:class:`server.process.PacedSocket`). With ``processes > 1`` it owns a temporary directory
for prometheus-client's multiprocess metrics, removed when the server stops.

It takes plain values: reading ``GF_*`` settings is the CLI's job. It does not scan or
save functions: only what is already registered is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.process

from globalfunc.errors import ConfigError, GlobalFuncError
from globalfunc.executor import (
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_TIMEOUT,
    Executor,
    InlineExecutor,
    IsolatedExecutor,
)
from globalfunc.executor.child import DEFAULT_WORKER_USER
from globalfunc.executor.handle import DEFAULT_MAX_FRAME
from globalfunc.jsoncodec import DEFAULT_MAX_DEPTH
from globalfunc.naming import DEFAULT_TIER1
from globalfunc.registry import Registry
from globalfunc.storage import open_storage
from globalfunc.storage.base import DEFAULT_CACHE_TTL, redact_url
from server.advertise import is_loopback
from server.aiges.ase_http import AseServices, ase_openapi, ase_routes, load_wrappers
from server.http.app import make_app
from server.http.metrics import enable_multiprocess
from server.http.state import DEFAULT_MAX_BODY, hard_body_limit
from server.process import (
    PacedSocket,
    die_with_parent,
    make_undumpable,
    raise_open_files_limit,
    stop_supervisor,
)

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "MODES",
    "build_executor",
    "is_loopback",
    "serve",
]

log = logging.getLogger(__name__)
MODES = ("inline", "isolated")
DEFAULT_MAX_RESULT_MB = DEFAULT_MAX_FRAME >> 20
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 60.0
_CLOSE_CALLS = 2.5  # seconds to fail the calls in flight and write their answers
_CLOSE_CONNECTIONS = 1.5  # then to close every connection


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
    workers: int | None = None,
    call_timeout: float = DEFAULT_TIMEOUT,
    timeouts: Mapping[str, float] | None = None,
    memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
    cache_dir: Path | None = None,
    function_concurrency: int | None = None,
    queue_size: int | None = None,
    max_result_mb: int = DEFAULT_MAX_RESULT_MB,
    worker_user: str | None = DEFAULT_WORKER_USER,
    loop: asyncio.AbstractEventLoop | None = None,
    debug: bool = False,
) -> Executor:
    """An executor over ``registry``: inline, or a worker pool on ``loop`` (then ``astart()``)."""
    if mode == "inline":
        from globalfunc.resolve import Resolver

        return InlineExecutor(Resolver(registry, cache_dir=cache_dir), debug=debug)
    if mode == "isolated":
        return IsolatedExecutor(
            registry=registry,
            workers=workers or 2,
            timeout=call_timeout,
            timeouts=timeouts,
            memory_limit_mb=memory_limit_mb,
            function_concurrency=function_concurrency,
            max_queue=queue_size,
            max_result_mb=max_result_mb,
            user=worker_user,
            loop=loop,
            debug=debug,
        )
    raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}")


def serve(
    root: Path,
    *,
    storage_url: str | None = None,
    storage_timeout: float = 2.0,
    cache_ttl: float | None = DEFAULT_CACHE_TTL,
    host: str = "127.0.0.1",
    port: int = 8000,
    processes: int = 1,
    mode: str = "isolated",
    workers: int | None = None,
    token: str | None = None,
    write_token: str | None = None,
    insecure: bool = False,
    allow_packages: list[str] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_json_depth: int = DEFAULT_MAX_DEPTH,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    call_timeout: float = DEFAULT_TIMEOUT,
    timeouts: Mapping[str, float] | None = None,
    memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
    function_concurrency: int | None = None,
    queue_size: int | None = None,
    max_result_mb: int = DEFAULT_MAX_RESULT_MB,
    worker_user: str | None = DEFAULT_WORKER_USER,
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

    ``storage_timeout`` bounds each storage network call; ``cache_ttl`` how long an entry
    of a tiered store's cache is served (``GF_STORAGE_TIMEOUT``, ``GF_CACHE_TTL``).

    ``write_token`` (``GF_WRITE_TOKEN``) is the one saving through ``/registry/`` needs;
    with it, ``token`` may call and read only (:mod:`server.http.registry_api`).

    Without a ``token``, a ``host`` that is not a loopback address is refused
    (:class:`ConfigError`) unless ``insecure``: anyone who reaches the port could run every
    served function. ``body_timeout`` bounds the time to receive a request body,
    ``idle_timeout`` the life of an idle connection (and the wait for a request's headers).
    """
    if mode not in MODES:
        raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if processes < 1:
        raise ConfigError(f"processes must be at least 1, got {processes}")
    if max_body < 1:
        raise ConfigError(f"max_body must be at least 1, got {max_body}")
    if call_timeout <= 0:
        raise ConfigError(f"call_timeout must be positive, got {call_timeout}")
    if body_timeout <= 0 or idle_timeout <= 0:
        raise ConfigError(
            f"body_timeout and idle_timeout must be positive, got {body_timeout} and "
            f"{idle_timeout} (GF_BODY_TIMEOUT, GF_IDLE_TIMEOUT)"
        )
    if not token and not insecure and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host!r} without a token: anyone who can reach it could run "
            "every served function; set GF_TOKEN=<secret> or GF_TOKEN_FILE=<file holding it> "
            "(clients send 'Authorization: Bearer <secret>'), or pass --insecure (GF_INSECURE=1)"
        )
    if not token and not is_loopback(host):
        log.warning(
            "serving on %s without a token (insecure): anyone who can reach it can "
            "run every served function",
            host,
        )
    os.environ.pop("GF_TOKEN", None)  # nothing this process starts inherits it
    os.environ.pop("GF_WRITE_TOKEN", None)
    make_undumpable()
    raise_open_files_limit()
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
    metrics_dir: str | None = None
    if processes > 1:
        metrics_dir = tempfile.mkdtemp(prefix="gf-metrics-")
        # prometheus-client opens its per-process files under this variable's directory
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        enable_multiprocess(metrics_dir)
        previous = signal.signal(signal.SIGTERM, stop_supervisor)
        try:
            task = tornado.process.fork_processes(processes, max_restarts=100)
        except (KeyboardInterrupt, SystemExit):
            # The supervisor: its children stop on their own SIGINT, or on the SIGTERM
            # the kernel sends them when it exits (see server.process.die_with_parent).
            for sock in sockets:
                sock.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
            return
        except BaseException:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            raise
        signal.signal(signal.SIGTERM, previous)  # a server process: the loop handles it
        die_with_parent()
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
            storage_timeout=storage_timeout,
            cache_ttl=cache_ttl,
            mode=mode,
            workers=workers,
            token=token,
            write_token=write_token,
            allow_packages=allow_packages,
            max_body=max_body,
            max_json_depth=max_json_depth,
            body_timeout=body_timeout,
            idle_timeout=idle_timeout,
            metrics_dir=metrics_dir,
            call_timeout=call_timeout,
            timeouts=timeouts,
            memory_limit_mb=memory_limit_mb,
            function_concurrency=function_concurrency,
            queue_size=queue_size,
            max_result_mb=max_result_mb,
            worker_user=worker_user,
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
    storage_timeout: float,
    cache_ttl: float | None,
    mode: str,
    workers: int | None,
    token: str | None,
    write_token: str | None,
    allow_packages: list[str] | None,
    max_body: int,
    max_json_depth: int,
    body_timeout: float,
    idle_timeout: float,
    metrics_dir: str | None,
    call_timeout: float,
    timeouts: Mapping[str, float] | None,
    memory_limit_mb: int | None,
    function_concurrency: int | None,
    queue_size: int | None,
    max_result_mb: int,
    worker_user: str | None,
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
    registry = Registry(
        open_storage(storage_url, timeout=storage_timeout, cache_ttl=cache_ttl),
        tier1=tier1,
        branch=branch,
    )
    executor = build_executor(
        mode,
        registry,
        workers=workers,
        call_timeout=call_timeout,
        timeouts=timeouts,
        memory_limit_mb=memory_limit_mb,
        cache_dir=cache_dir,
        function_concurrency=function_concurrency,
        queue_size=queue_size,
        max_result_mb=max_result_mb,
        worker_user=worker_user,
        loop=asyncio.get_running_loop(),
        debug=debug,
    )
    services: AseServices | None = None
    try:
        if isinstance(executor, IsolatedExecutor):
            await executor.astart()
        services = AseServices(
            load_wrappers(
                aiges_wrappers,
                isolated=mode == "isolated",
                call_timeout=call_timeout,
                memory_mb=memory_limit_mb,
                user=worker_user,
            )
        )
        app = make_app(
            registry,
            executor,
            token=token,
            write_token=write_token,
            allow_packages=allow_packages,
            max_body=max_body,
            max_json_depth=max_json_depth,
            metrics_dir=metrics_dir,
            cors_origins=cors_origins,
            debug=debug,
            info={"root": str(root)},
            extra_routes=[*extra_routes, *ase_routes(services)],
            openapi_extensions=[functools.partial(ase_openapi, services)],
        )
        server = tornado.httpserver.HTTPServer(
            app,
            max_body_size=hard_body_limit(max_body),
            body_timeout=body_timeout,
            idle_connection_timeout=idle_timeout,
            xheaders=False,
        )
        # What start-up built (modules, the app, the pool) lives as long as the server: out
        # of the collector's way, so that full collections under load stay short.
        gc.collect()
        gc.freeze()
        server.add_sockets([PacedSocket.wrap(sock) for sock in sockets])
        if metrics_dir is not None:  # the other processes' scrapes see this one's pool
            metrics = app.gf_state.metrics
            tornado.ioloop.PeriodicCallback(
                functools.partial(metrics.refresh_executor, executor.stats), 2000
            ).start()
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
        # Fail the calls still waiting (isolated: 503 Overloaded, nothing ran) or running
        # (502 Interrupted, it may have run in part; a worker keeps its idempotency claim)
        # and let their handlers write those answers before the connections
        # close: off the loop, close() ends the pool on the loop and waits for the calls'
        # tasks to finish. The bounds keep the whole stop under 5 s.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(executor.close), timeout=_CLOSE_CALLS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close_all_connections(), timeout=_CLOSE_CONNECTIONS)
    finally:
        if services is not None:
            services.close()
        executor.close()
        registry.close()
