"""``gf``: the command line of GlobalFunc.

    gf init [DIR]                       a new packages repository (git init, a sample package)
    gf scan                             list function files and problems
    gf save [NAME ...] | --all          save functions (one transaction)
    gf gen NAME --to DIR                write a stored version back out, hash-checked
    gf ls [PACKAGE]                     registered functions
    gf show NAME                        signature, docstring, code and history
    gf history NAME                     every version, newest first
    gf rm NAME                          delete (a tombstone; the history stays)
    gf search QUERY                     full-text search
    gf commit -m MSG                    commit (and push) the packages root
    gf call NAME k=v ...                call a function in-process (or --url a server)
    gf serve                            the HTTP server
    gf worker                           the HTTP server on a free port, registered in Redis
    gf workers                          the live workers

Settings come from ``GF_*`` environment variables (see :mod:`globalfunc.settings`) and the
global options. A user error prints one line and exits 1; a usage error exits 2; a
traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson
from pydantic import ValidationError

from globalfunc.errors import ConfigError, GlobalFuncError, InvalidRequest
from globalfunc.record import FunctionRecord
from globalfunc.settings import Settings
from globalfunc.storage import open_storage

log = logging.getLogger("globalfunc.cli")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"gf: usage error: {message}\n")


# -- context --------------------------------------------------------------------------------
class Context:
    """What every command needs, built once from settings and global options."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.root = Path(args.root or settings.root)
        self.tier1 = args.tier1 or settings.tier1
        self.progress = sys.stderr.isatty()
        self._gfbase: Any = None

    def storage_url(self) -> str:
        from gfbase.facade import default_storage_url

        durable = self.args.storage or self.settings.storage_url
        if durable is None:
            if not self.root.is_dir():
                raise ConfigError(
                    f"packages root {str(self.root)!r} is not a folder; pass --root DIR or set GF_ROOT"
                )
            durable = default_storage_url(self.root)
        from globalfunc.storage.base import combine_urls

        return combine_urls(durable, self.settings.cache_url)

    @property
    def gfbase(self) -> Any:
        if self._gfbase is None:
            from gfbase import GFBase

            if not self.root.is_dir():
                raise ConfigError(
                    f"packages root {str(self.root)!r} is not a folder; pass --root DIR or set GF_ROOT"
                )
            self._gfbase = GFBase(
                self.root,
                tier1=self.tier1,
                storage=open_storage(self.storage_url(), timeout=self.settings.storage_timeout),
                max_file_size=self.settings.max_file_size,
            )
        return self._gfbase

    def close(self) -> None:
        if self._gfbase is not None:
            self._gfbase.close()


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _short(sha: str) -> str:
    return sha[:12]


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


# -- commands -------------------------------------------------------------------------------
def cmd_init(ctx: Context) -> int:
    from globalfunc.workspace import Workspace

    target = Path(ctx.args.dir or ".")
    ws = Workspace.init(target, sample=not ctx.args.no_sample)
    _out(f"initialized packages repository in {ws.root}")
    if not ctx.args.no_sample:
        _out(
            "sample function: Sample/hello.py; try: gf --root {} save --all".format(
                ctx.args.dir or "."
            )
        )
    return EXIT_OK


def cmd_scan(ctx: Context) -> int:
    result = ctx.gfbase.scan(progress=ctx.progress)
    if ctx.args.json:
        body = {
            "functions": {
                k: {"sha256": v.sha256, "signature": v.signature}
                for k, v in result.functions.items()
            },
            "problems": [str(p) for p in result.problems],
        }
        _out(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, info in sorted(result.functions.items()):
            _out(f"{key[:-3]}{info.signature}  {_short(info.sha256)}")
        for problem in result.problems:
            _out(f"problem: {problem}")
        _out(f"{len(result.functions)} functions, {len(result.problems)} problems")
    return EXIT_ERROR if result.problems and ctx.args.strict else EXIT_OK


def cmd_save(ctx: Context) -> int:
    if not ctx.args.names and not ctx.args.all:
        raise InvalidRequest("name the functions to save (Base.to_pickle ...) or pass --all")
    saved, result = ctx.gfbase.save_all(
        None if ctx.args.all else ctx.args.names, progress=ctx.progress
    )
    added = [s for s in saved if s.added]
    for s in added:
        _out(f"saved {s.key} {_short(s.sha256)}")
    for problem in result.problems if ctx.args.all else []:
        _out(f"skipped: {problem}")
    branch = ctx.gfbase.registry.branch
    _out(f"{len(added)} saved, {len(saved) - len(added)} unchanged on branch {branch!r}")
    return EXIT_OK


def cmd_gen(ctx: Context) -> int:
    path = ctx.gfbase.registry.materialize(
        ctx.args.name, Path(ctx.args.to), branch=ctx.args.branch, sha256=ctx.args.hash
    )
    _out(f"wrote {path}")
    return EXIT_OK


def cmd_ls(ctx: Context) -> int:
    records: list[FunctionRecord] = ctx.gfbase.registry.list(
        ctx.args.package, branch=ctx.args.branch, all_branches=ctx.args.all_branches
    )
    for r in records:
        summary = (r.docstring or "").strip().splitlines()[0] if r.docstring else ""
        branch = f" [{r.branch}]" if ctx.args.all_branches else ""
        _out(f"{r.package}.{r.name}{r.signature}{branch}  {summary}")
    if not records:
        _out("no functions registered; save some with 'gf save --all'")
    return EXIT_OK


def cmd_show(ctx: Context) -> int:
    reg = ctx.gfbase.registry
    r = reg.get(ctx.args.name, branch=ctx.args.branch, sha256=ctx.args.hash)
    _out(f"{r.key}")
    _out(f"  {r.package}.{r.name}{r.signature}")
    _out(
        f"  sha256 {r.sha256}  md5 {r.md5}  saved {_when(r.saved_at)}  commit {(r.commit or '-')[:12]}"
    )
    if r.imports:
        _out(f"  imports: {', '.join(r.imports)}")
    if r.docstring:
        _out("")
        for line in r.docstring.splitlines():
            _out(f"  {line}")
    _out("")
    _out(r.code.rstrip("\n"))
    _out("")
    _print_history(reg.history(ctx.args.name, branch=ctx.args.branch))
    return EXIT_OK


def _print_history(history: Sequence[FunctionRecord]) -> None:
    _out(f"history ({len(history)} versions, newest first):")
    for h in history:
        mark = "  deleted" if h.deleted else ""
        _out(f"  {_when(h.saved_at)}  {_short(h.sha256)}  commit {(h.commit or '-')[:12]}{mark}")


def cmd_history(ctx: Context) -> int:
    history = ctx.gfbase.registry.history(ctx.args.name, branch=ctx.args.branch)
    if not history:
        from globalfunc.errors import FunctionNotFound

        raise FunctionNotFound(f"no versions of {ctx.args.name} on this branch")
    _print_history(history)
    return EXIT_OK


def cmd_search(ctx: Context) -> int:
    hits = ctx.gfbase.registry.search(ctx.args.query, limit=ctx.args.limit)
    for r in hits:
        summary = (r.docstring or "").strip().splitlines()[0] if r.docstring else ""
        _out(f"{r.package}.{r.name}{r.signature}  [{r.branch}]  {summary}")
    if not hits:
        _out(f"nothing matches {ctx.args.query!r}")
    return EXIT_OK


def cmd_rm(ctx: Context) -> int:
    reg = ctx.gfbase.registry
    if not reg.delete(ctx.args.name, branch=ctx.args.branch):
        from globalfunc.errors import FunctionNotFound

        raise FunctionNotFound(
            f"no live function {ctx.args.name} on branch {ctx.args.branch or reg.branch!r}"
        )
    _out(f"deleted {reg.key(ctx.args.name, ctx.args.branch)} (history kept: gf history)")
    return EXIT_OK


def cmd_commit(ctx: Context) -> int:
    result = ctx.gfbase.commit(ctx.args.message, push=not ctx.args.no_push)
    if result.sha is None:
        _out("nothing to commit")
    else:
        pushed = f", pushed to {result.remote}" if result.pushed else ""
        _out(f"committed {result.sha[:12]} {result.message!r}{pushed}")
    return EXIT_OK


def _parse_kv(items: Sequence[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"argument {item!r} must look like name=value")
        try:
            kwargs[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            kwargs[key] = raw  # a bare word is a string
    return kwargs


def cmd_call(ctx: Context) -> int:
    kwargs = _parse_kv(ctx.args.kwargs)
    if ctx.args.json_kwargs:
        try:
            extra = orjson.loads(ctx.args.json_kwargs)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"--json is not valid JSON: {exc}") from exc
        if not isinstance(extra, dict):
            raise InvalidRequest("--json must be a JSON object of keyword arguments")
        kwargs.update(extra)
    if ctx.args.url:
        from globalfunc.client import GFClient

        token = ctx.settings.token.get_secret_value() if ctx.settings.token else None
        result = GFClient(ctx.args.url, token=token).call(ctx.args.name, **kwargs)
    else:
        from gfgo import GFGo

        result = GFGo(ctx.gfbase.registry).call(ctx.args.name, **kwargs)
    _out(orjson.dumps(result, default=str, option=orjson.OPT_NON_STR_KEYS).decode())
    return EXIT_OK


def _timeouts(value: str | None) -> dict[str, float]:
    try:
        return Settings.parse_timeouts(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _serve_options(ctx: Context) -> dict[str, Any]:
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
        "tier1": ctx.tier1,
        "workers": ctx.args.workers or s.workers,
        "mode": ctx.args.mode or s.mode,
        "token": s.token.get_secret_value() if s.token else None,
        "allow_packages": Settings.split(s.allow_packages),
        "max_body": s.max_body,
        "call_timeout": s.call_timeout,
        "cors_origins": Settings.split(s.cors_origins),
        "memory_limit_mb": s.memory_mb or None,
        "timeouts": _timeouts(s.timeouts),
        "cache_dir": Path(s.cache_dir) if s.cache_dir else None,
        "branch": gfb.registry.branch,
        "aiges_wrappers": ctx.args.aiges_wrapper or (),
        "debug": ctx.args.debug,
    }


def cmd_serve(ctx: Context) -> int:
    from server.serve import serve

    s = ctx.settings
    options = _serve_options(ctx)
    serve(
        options.pop("root"),
        host=ctx.args.host or s.host,
        port=ctx.args.port if ctx.args.port is not None else s.port,
        processes=ctx.args.processes or s.processes,
        **options,
    )
    return EXIT_OK


# -- workers --------------------------------------------------------------------------------
def _worker_redis_url(ctx: Context) -> str:
    url = ctx.args.redis or ctx.settings.worker_redis_url or ctx.settings.cache_url
    if not url:
        raise ConfigError(
            "workers register in Redis, and none is configured: set GF_WORKER_REDIS_URL "
            "(or GF_CACHE_URL, which it defaults to), or pass --redis redis://host:6379/0"
        )
    return url


def _worker_memory_gb(ctx: Context, mode: str, cap_mb: int | None) -> int:
    """What the name's memory part says: ``--memory-gb``, else the memory one call may use:
    the per-call cap of the isolated mode (GF_MEMORY_MB) if the machine or container has
    that much, else the container's (cgroup) limit or the machine's RAM."""
    from globalfunc.workers import machine_memory_mb, memory_gb

    if ctx.args.memory_gb is not None:
        return int(ctx.args.memory_gb)
    machine = machine_memory_mb()
    if mode == "isolated" and cap_mb:
        return memory_gb(min(cap_mb, machine) if machine else cap_mb)
    return memory_gb(machine)


def _advertised_url(url: str, advertise: str | None) -> str:
    """The URL clients use: ``url`` with its host replaced by ``advertise``, or by this
    machine's name when the server listens on a wildcard address."""
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    host = advertise
    if host is None and parts.hostname in (None, "", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if host is None:
        return url
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))


def _address_in_use(exc: ConfigError) -> bool:
    import errno

    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


def cmd_worker(ctx: Context) -> int:
    import globalfunc
    from globalfunc.workers import (
        Heartbeat,
        WorkerDirectory,
        WorkerInfo,
        parse_port_range,
        pick_port,
        worker_name,
    )
    from server.serve import serve

    s = ctx.settings
    first, last = parse_port_range(ctx.args.ports or s.worker_ports)
    redis_url = _worker_redis_url(ctx)
    host = ctx.args.host or s.host
    interval = s.worker_heartbeat
    host_label = ctx.args.host_label or _hostname()
    version_label = ctx.args.version_label or f"v{globalfunc.__version__}"
    memory = _worker_memory_gb(ctx, ctx.args.mode or s.mode, s.memory_mb or None)
    worker_name(host_label, version_label, memory, ctx.args.gpu_gb, first)  # labels fail fast
    directory = WorkerDirectory(redis_url, timeout=s.storage_timeout)
    heartbeat: Heartbeat | None = None
    try:
        directory.ping()  # before saving anything or taking a port
        port = pick_port(host, first, last)
        options = _serve_options(ctx)
        root = options.pop("root")

        def describe(port: int, url: str) -> WorkerInfo:
            return WorkerInfo.new(
                host=host_label,
                version=version_label,
                memory_gb=memory,
                gpu_gb=ctx.args.gpu_gb,
                port=port,
                url=url,
                root=str(root),
                branch=options["branch"],
                packages=options["allow_packages"],
            )

        def ready(url: str) -> None:
            nonlocal heartbeat
            port = int(url.rstrip("/").rsplit(":", 1)[1])
            info = describe(port, _advertised_url(url, ctx.args.advertise))
            heartbeat = Heartbeat(directory, info, interval=interval).start()
            _out(
                f"GlobalFunc worker {info.name} at {info.url} (registered in {directory.url}, "
                f"heartbeat every {interval:g}s)"
            )
            sys.stdout.flush()

        def stopping() -> None:
            nonlocal heartbeat
            if heartbeat is not None:
                heartbeat.stop()
                log.info("worker %s deregistered", heartbeat.name)
                heartbeat = None

        while True:
            try:
                serve(
                    root,
                    host=host,
                    port=port,
                    processes=1,
                    on_ready=ready,
                    on_stop=stopping,
                    **options,
                )
                return EXIT_OK
            except ConfigError as exc:
                # another process took the port between the probe and the bind
                if not _address_in_use(exc) or port >= last:
                    raise
                port = pick_port(host, port + 1, last)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        directory.close()


def _hostname() -> str:
    """This machine's short host name (the default host label of a worker)."""
    import socket

    return socket.gethostname().split(".")[0] or "localhost"


def cmd_workers(ctx: Context) -> int:
    from globalfunc.workers import WorkerDirectory

    with WorkerDirectory(_worker_redis_url(ctx), timeout=ctx.settings.storage_timeout) as d:
        live = d.live()
        where = d.url
    if ctx.args.json:
        body = [{**w.__dict__, "age": round(w.age(), 3)} for w in live]
        _out(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    for w in live:
        _out(f"{w.name}  {w.url}  heartbeat {w.age():.1f}s ago")
    if not live:
        _out(f"no live workers in {where}; start one with: gf worker")
    return EXIT_OK


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gf", description="GlobalFunc: share, version, find and serve functions.")
    p.add_argument("--root", help="packages root (default: $GF_ROOT or the current folder)")
    p.add_argument("--tier1", help="registry space (default: $GF_TIER1 or sp_GlobalFunc)")
    p.add_argument("--storage", help="storage URL (default: $GF_STORAGE_URL or embedded SQLite)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, func: Callable[[Context], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    sp = add("init", cmd_init, "make a new packages repository (git init + a sample package)")
    sp.add_argument("dir", nargs="?", help="folder to create (default: current folder)")
    sp.add_argument("--no-sample", action="store_true", help="do not add the sample package")

    sp = add("scan", cmd_scan, "scan the packages root and list functions and problems")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--strict", action="store_true", help="exit 1 when any file has a problem")

    sp = add("save", cmd_save, "save functions to the registry (unchanged ones are skipped)")
    sp.add_argument("names", nargs="*", metavar="NAME", help="Package.func names")
    sp.add_argument("--all", action="store_true", help="save every function under the root")

    sp = add("gen", cmd_gen, "write a stored version back out as a file (hash-checked)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--to", required=True, metavar="DIR", help="target folder")
    sp.add_argument("--branch", help="branch (default: the current one)")
    sp.add_argument("--hash", help="sha256 (or a 6+ digit prefix) of the version")

    sp = add("ls", cmd_ls, "list registered functions")
    sp.add_argument("package", nargs="?")
    sp.add_argument("--branch")
    sp.add_argument("--all-branches", action="store_true")

    sp = add("show", cmd_show, "show a function: signature, docstring, code, history")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--branch")
    sp.add_argument("--hash")

    sp = add("history", cmd_history, "list every version of a function, newest first")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--branch")

    sp = add("search", cmd_search, "full-text search over names, docstrings, signatures, code")
    sp.add_argument("query")
    sp.add_argument("--limit", type=int, default=20)

    sp = add("rm", cmd_rm, "delete a function from the registry (a tombstone; history is kept)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--branch")

    sp = add("commit", cmd_commit, "commit everything under the root (and push if a remote exists)")
    sp.add_argument("-m", "--message", required=True)
    sp.add_argument("--no-push", action="store_true")

    sp = add(
        "call",
        cmd_call,
        "call a function: gf call Base.inverse_time_str time_str=... bias_hours=-8",
    )
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("kwargs", nargs="*", metavar="KEY=VALUE", help="values are JSON, else strings")
    sp.add_argument("--json", dest="json_kwargs", metavar="OBJECT", help="kwargs as a JSON object")
    sp.add_argument("--url", help="call a GlobalFunc server instead of in-process")

    sp = add("serve", cmd_serve, "save every function, then serve them over HTTP")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
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
        help="host clients reach this worker at (default: --host; the machine's name for 0.0.0.0)",
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

    sp = add("workers", cmd_workers, "list the live workers registered in Redis")
    sp.add_argument("--redis", metavar="URL", help="default: $GF_WORKER_REDIS_URL, $GF_CACHE_URL")
    sp.add_argument("--json", action="store_true", help="machine-readable output")

    _add_aiges(sub)
    return p


def _add_serve_options(sp: argparse.ArgumentParser) -> None:
    """How functions are run: the options ``gf serve`` and ``gf worker`` share."""
    sp.add_argument("--workers", type=int, help="isolated worker processes per server")
    sp.add_argument("--mode", choices=["inline", "isolated"])
    sp.add_argument(
        "--aiges-wrapper",
        action="append",
        metavar="DIR",
        help="also serve an AIGES wrapper.py project over the ase HTTP protocol (repeatable)",
    )


def cmd_aiges_serve(ctx: Context) -> int:
    from server.aiges.launch import run

    if ctx.args.function and not ctx.args.plugin_root:
        ctx.args.plugin_root = str(ctx.root)
    ctx.args.root = ctx.args.plugin_root
    return run(ctx.args)


def cmd_aiges_create(ctx: Context) -> int:
    from server.aiges.scaffold import create_project

    path = create_project(ctx.args.name, ctx.args.dir)
    _out(f"created AIGES project {path}; check it with: gf aiges check {path}")
    return EXIT_OK


def cmd_aiges_check(ctx: Context) -> int:
    from server.aiges.scaffold import check_project

    problems = check_project(ctx.args.project)
    for problem in problems:
        sys.stderr.write(f"gf: aiges check: {problem}\n")
    if problems:
        return EXIT_ERROR
    _out(f"{ctx.args.project}: wrapper imports, inits and answers its test data correctly")
    return EXIT_OK


def _add_aiges(sub: Any) -> None:
    """``gf aiges serve|create|check``: the AIGES plugin and project tooling."""
    aiges = sub.add_parser(
        "aiges", help="AIGES: serve as a loader plugin, create or check a project"
    )
    asub = aiges.add_subparsers(dest="aiges_command", metavar="COMMAND", parser_class=_Parser)
    asub.required = True
    from server.aiges.options import make_parser

    serve = asub.add_parser(
        "serve", help="run the gRPC plugin (what aiges.toml's pythonPluginCmd starts)"
    )
    make_parser(serve)
    # the plugin's --root would clash with gf's global --root: keep both
    for action in serve._actions:
        if action.dest == "root":
            action.dest = "plugin_root"
    serve.set_defaults(func=cmd_aiges_serve)
    create = asub.add_parser("create", help="make a new AIGES project that runs as generated")
    create.add_argument("-n", "--name", required=True)
    create.add_argument("--dir", default=".", help="parent folder (default: current folder)")
    create.set_defaults(func=cmd_aiges_create)
    check = asub.add_parser(
        "check", help="import, init and once-exec a project's wrapper on its test data"
    )
    check.add_argument("project", metavar="DIR")
    check.set_defaults(func=cmd_aiges_check)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        ctx = Context(args, Settings())
        return int(args.func(ctx))
    except GlobalFuncError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"gf: error: {exc.message}\n")
        return EXIT_ERROR
    except ValidationError as exc:
        if args.debug:
            raise
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        sys.stderr.write(f"gf: error: setting GF_{where.upper()}: {first.get('msg')}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    finally:
        if ctx is not None:
            ctx.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
