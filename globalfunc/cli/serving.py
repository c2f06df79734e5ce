"""``gf serve``, ``gf worker`` and ``gf workers``: serving the registry over HTTP.

``serve`` and ``worker`` first save every function under the root, then hand plain
values to the server side (:func:`server.serve.serve`, :func:`server.worker.run_worker`),
imported inside the command so that building the parser imports no server. ``workers``
lists the live workers in Redis; ``workers drain NAME`` and ``workers stop NAME [--grace S]``
send a command through that Redis (the worker may be on another machine) addressed to the
instance registered now, so it never stops a later worker of that name; every option is
checked before anything is sent.

Not here: the worker's life (port, registration, heartbeat: ``server.worker``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

import orjson

from globalfunc.cli.context import EXIT_OK, Context, out
from globalfunc.errors import ConfigError
from globalfunc.settings import Settings

__all__ = ["add_parsers", "serve_options"]

log = logging.getLogger("globalfunc.cli")


def _timeouts(value: str | None) -> dict[str, float]:
    try:
        return Settings.parse_timeouts(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def serve_options(ctx: Context) -> dict[str, Any]:
    """Save every function under the root, then the keyword arguments of ``server.serve.serve``
    that ``gf serve`` and ``gf worker`` share (everything but where to listen)."""
    s = ctx.settings
    gfb = ctx.gfbase
    _, result = gfb.save_all(progress=ctx.progress)
    for problem in result.problems:
        log.warning("not served: %s", problem)
    return {
        "root": gfb.project_path,
        "storage_url": ctx.storage_url(),
        "storage_timeout": s.storage_timeout,
        "cache_ttl": s.cache_ttl,
        "tier1": ctx.tier1,
        "workers": ctx.args.workers or s.workers,
        "mode": ctx.args.mode or s.mode,
        "token": ctx.token(),
        "write_token": s.write_bearer_token(),
        "insecure": ctx.args.insecure or s.insecure,
        "allow_packages": Settings.split(s.allow_packages),
        "max_body": s.max_body,
        "max_json_depth": s.max_json_depth,
        "body_timeout": s.body_timeout,
        "idle_timeout": s.idle_timeout,
        "call_timeout": s.call_timeout,
        "cors_origins": Settings.split(s.cors_origins),
        "memory_limit_mb": s.memory_mb or None,
        "timeouts": _timeouts(s.timeouts),
        "function_concurrency": s.function_concurrency,
        "queue_size": s.queue_size,
        "max_result_mb": s.max_result_mb,
        "worker_user": s.worker_user or None,
        "cache_dir": Path(s.cache_dir) if s.cache_dir else None,
        "branch": gfb.registry.branch,
        "aiges_wrappers": ctx.args.aiges_wrapper or (),
        "debug": ctx.args.debug,
    }


def cmd_serve(ctx: Context) -> int:
    from server.serve import serve

    s = ctx.settings
    options = serve_options(ctx)
    serve(
        options.pop("root"),
        host=ctx.args.host or s.host,
        port=ctx.args.port if ctx.args.port is not None else s.port,
        processes=ctx.args.processes or s.processes,
        **options,
    )
    return EXIT_OK


def _worker_redis_url(ctx: Context) -> str:
    url = ctx.args.redis or ctx.settings.worker_redis_url or ctx.settings.cache_url
    if not url:
        raise ConfigError(
            "workers register in Redis, and none is configured: set GF_WORKER_REDIS_URL "
            "(or GF_CACHE_URL, which it defaults to), or pass --redis redis://host:6379/0"
        )
    return url


def cmd_worker(ctx: Context) -> int:
    import globalfunc
    from globalfunc.workers import WorkerDirectory, WorkerInfo, parse_port_range
    from server.worker import WorkerLabels, default_memory_gb, hostname, run_worker

    s = ctx.settings
    ports = parse_port_range(ctx.args.ports or s.worker_ports)
    redis_url = _worker_redis_url(ctx)
    memory = ctx.args.memory_gb
    if memory is None:
        memory = default_memory_gb(ctx.args.mode or s.mode, s.memory_mb or None)
    labels = WorkerLabels(
        host=ctx.args.host_label or hostname(),
        version=ctx.args.version_label or f"v{globalfunc.__version__}",
        memory_gb=int(memory),
        gpu_gb=ctx.args.gpu_gb,
    )
    labels.check(ports[0])  # bad labels fail before anything is saved
    interval = s.worker_heartbeat

    with WorkerDirectory(redis_url, timeout=s.storage_timeout) as directory:
        directory.ping()  # before saving anything or taking a port
        options = serve_options(ctx)
        root = options.pop("root")

        def announce(info: WorkerInfo) -> None:
            out(
                f"GlobalFunc worker {info.name} at {info.url} (registered in {directory.url}, "
                f"heartbeat every {interval:g}s)"
            )
            sys.stdout.flush()

        run_worker(
            root,
            directory=directory,
            labels=labels,
            host=ctx.args.host or s.host,
            ports=ports,
            heartbeat=interval,
            serve_options=options,
            advertise=ctx.args.advertise,
            announce=announce,
            redis_url=redis_url,
            idempotency_ttl=s.idempotency_ttl,
            idempotency_max_result=s.idempotency_max_result_kb * 1024,
            stop_grace=s.stop_grace,
        )
    return EXIT_OK


def _seconds(value: float | None, option: str, *, zero: bool) -> float | None:
    """``value`` if it is a finite number of seconds (> 0, or >= 0 with ``zero``)."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ConfigError(
            f"{option} {value:g} is not a number of seconds {'>= 0' if zero else '> 0'}; "
            f"give e.g. {option} 30"
        )
    return value


def _command_worker(ctx: Context, what: str) -> int:
    import time

    from globalfunc.errors import NotFound
    from globalfunc.workers import WorkerDirectory

    name = ctx.args.name
    if not name:
        raise ConfigError(f"gf workers {what} needs a worker NAME; 'gf workers' lists them")
    # every option is checked before anything is sent
    timeout = _seconds(ctx.args.timeout, "--timeout", zero=False)
    grace = _seconds(ctx.args.grace, "--grace", zero=True)
    assert timeout is not None
    if what == "drain" and grace is not None:
        raise ConfigError(
            f"--grace {grace:g} is for 'gf workers stop' (a drain waits for every call); "
            f"give 'gf workers stop {name} --grace {grace:g}' for a bounded drain"
        )
    with WorkerDirectory(_worker_redis_url(ctx), timeout=ctx.settings.storage_timeout) as d:
        info = d.get(name)
        if info is None:
            raise NotFound(f"no live worker {name!r} in {d.url}; 'gf workers' lists them")
        # addressed to this instance: a later worker of that name ignores and deletes it
        pending = max(60.0, timeout)  # seconds the command waits for the worker to read it
        d.command(name, what, ttl=pending, instance=info.instance, grace=grace)
        how = "at once" if what == "stop" and not grace else "after its calls in flight"
        if what == "stop" and grace:
            how = f"after its calls in flight, at most {grace:g}s"
        out(f"{what} sent to {name} (pid {info.pid}): it stops {how}; waiting at most {timeout:g}s")
        sys.stdout.flush()
        deadline = time.monotonic() + timeout
        while True:
            now = d.get(name)
            if now is None or now.instance != info.instance:
                break
            if time.monotonic() > deadline:
                try:
                    unread = bool(d.client.exists(d.control_key(name)))
                except Exception:  # only the advice depends on it
                    unread = True
                if unread:
                    left = max(0.0, pending - timeout)
                    hint = (
                        "it has not read the command (frozen or overloaded?): the command stays "
                        f"pending for {left:g}s more and the worker {what}s if it resumes by "
                        f"then; to stop it now, kill pid {info.pid} on its machine"
                    )
                elif what == "drain":
                    hint = (
                        "it is draining (calls still in flight); watch it with 'gf workers', "
                        f"or 'gf workers stop {name}' to interrupt them"
                    )
                else:
                    hint = (
                        "it read the command and is stopping (calls in flight within --grace); "
                        f"watch it with 'gf workers', or kill pid {info.pid} on its machine"
                    )
                raise ConfigError(f"worker {name} is still registered after {timeout:g}s: {hint}")
            time.sleep(0.1)
    out(f"{name} {'drained and ' if what == 'drain' else ''}stopped")
    return EXIT_OK


def cmd_workers(ctx: Context) -> int:
    from globalfunc.workers import WorkerDirectory

    if ctx.args.action is not None:
        return _command_worker(ctx, ctx.args.action)
    with WorkerDirectory(_worker_redis_url(ctx), timeout=ctx.settings.storage_timeout) as d:
        live = d.live()
        where = d.url
    if ctx.args.json:
        body = [{**w.__dict__, "age": round(w.age(), 3)} for w in live]
        out(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    for w in live:
        state = "  draining" if w.draining else ""
        out(f"{w.name}  {w.url}  heartbeat {w.age():.1f}s ago  {w.inflight} in flight{state}")
    if not live:
        out(f"no live workers in {where}; start one with: gf worker")
    return EXIT_OK


def _port(text: str) -> int:
    """``--port``: a TCP port, 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0-65535 (0: any free one)")
    return port


def _add_serve_options(sp: argparse.ArgumentParser) -> None:
    """How functions are run: the options ``gf serve`` and ``gf worker`` share."""
    sp.add_argument("--workers", type=int, help="isolated worker processes per server")
    sp.add_argument("--mode", choices=["inline", "isolated"])
    sp.add_argument(
        "--insecure",
        action="store_true",
        help="serve on a non-loopback address without a token (default: refuse; GF_INSECURE)",
    )
    sp.add_argument(
        "--aiges-wrapper",
        action="append",
        metavar="DIR",
        help="also serve an AIGES wrapper.py project over the ase HTTP protocol (repeatable)",
    )


def add_parsers(add: Any, _sub: Any = None) -> None:
    """The serving commands' parsers."""
    sp = add("serve", cmd_serve, "save every function, then serve them over HTTP")
    sp.add_argument("--host")
    sp.add_argument("--port", type=_port)
    sp.add_argument("--processes", type=int, help="server processes sharing the port")
    _add_serve_options(sp)

    sp = add(
        "worker",
        cmd_worker,
        "serve like 'gf serve' on the first free port of a range, registered in Redis",
    )
    sp.add_argument("--host", help="address to listen on (default: $GF_HOST or 127.0.0.1)")
    sp.add_argument(
        "--ports", metavar="FIRST-LAST", help="default: $GF_WORKER_PORTS or 26000-27000"
    )
    sp.add_argument("--redis", metavar="URL", help="default: $GF_WORKER_REDIS_URL, $GF_CACHE_URL")
    sp.add_argument(
        "--advertise",
        metavar="HOST",
        help="where clients reach this worker: HOST, HOST:PORT, [V6]:PORT or "
        "http(s)://HOST[:PORT]/ (default: --host; the machine's name for 0.0.0.0); "
        "never a loopback address for a non-loopback --host",
    )
    sp.add_argument("--host-label", help="name's host part (default: this machine's host name)")
    sp.add_argument("--version-label", help="name's version part (default: v<GlobalFunc version>)")
    sp.add_argument(
        "--memory-gb",
        type=int,
        help="name's memory part (default: the memory a call may use, see the README)",
    )
    sp.add_argument("--gpu-gb", type=int, default=0, help="name's GPU memory part (default 0)")
    _add_serve_options(sp)

    sp = add(
        "workers",
        cmd_workers,
        "list the live workers registered in Redis; drain NAME (finish its calls, then "
        "stop) or stop NAME (at once: calls in flight are interrupted; --grace S drains "
        "for at most S seconds first)",
    )
    sp.add_argument("action", nargs="?", choices=["drain", "stop"], help="default: list")
    sp.add_argument("name", nargs="?", help="the worker to drain or stop")
    sp.add_argument("--redis", metavar="URL", help="default: $GF_WORKER_REDIS_URL, $GF_CACHE_URL")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="drain/stop: seconds to wait for the worker to leave (default 300)",
    )
    sp.add_argument(
        "--grace",
        type=float,
        help="stop: let the calls in flight finish for at most this many seconds first "
        "(default: stop at once)",
    )
