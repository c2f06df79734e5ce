"""``gf map NAME --input in.jsonl --output out.jsonl``: one function over many inputs, on Ray.

Each input line is a JSON object of keyword arguments; each output line, in input order,
is ``{"result": ...}`` or the item's error (``{"error": "ExecutionError", "message": ...}``),
so one failing item never stops the others. The function is looked up in this folder's
registry (as ``gf call`` does) and runs through :func:`globalfunc.distributed.stream`: on
the cluster at ``--ray-address``, or on a local Ray started for the command.

Finished results are never lost: each line is written (unbuffered) to ``OUT.partial`` as
soon as it and all before it are done, and the file is renamed to ``OUT`` at the end.
Ctrl-C stops the map, keeps that finished prefix and says so; ``--resume`` keeps it and
runs only the items after it (a torn last line is cut off). Before Ray starts: the
output's folder must exist and be writable, the output must not be the input (same path
or same file), and an empty input writes an empty output without Ray.

Not here: Ray itself, or how a task runs (:mod:`globalfunc.distributed`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from globalfunc import jsoncodec
from globalfunc.cli.context import EXIT_ERROR, EXIT_OK, Context, out
from globalfunc.errors import GlobalFuncError, InvalidRequest

EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by SIGINT

__all__ = ["add_parsers", "check_paths", "cmd_map", "read_jsonl"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The keyword-argument objects of a JSON Lines file (blank lines skipped)."""
    items = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = jsoncodec.loads(line)
            except GlobalFuncError as exc:
                raise InvalidRequest(f"{path}:{n}: not JSON: {exc.message}") from exc
            if not isinstance(item, dict):
                raise InvalidRequest(
                    f"{path}:{n}: each line must be a JSON object of keyword arguments, "
                    f"got {type(item).__name__}"
                )
            items.append(item)
    return items


def check_paths(source: Path, target: Path) -> None:
    """Refuse an output that cannot be written, or that is the input, before any work."""
    if target.is_dir():
        raise InvalidRequest(f"--output {target} is a folder; name a file in it")
    folder = target.absolute().parent
    if not folder.is_dir():
        raise InvalidRequest(f"--output {target}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidRequest(
            f"--output {target}: folder {folder} is not writable; choose another --output"
        )
    for other in (target, _partial(target)):
        same = other.absolute() == source.absolute()
        if not same and other.exists() and source.exists():
            same = os.path.samefile(other, source)
        if same:
            raise InvalidRequest(
                f"--output {target} is the input file {source} (or its .partial); "
                "writing it would destroy the input: choose another --output"
            )


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def _kept(partial: Path) -> tuple[int, int]:
    """(lines, failed lines) finished in a partial output; a torn last line is cut off."""
    try:
        data = partial.read_bytes()
    except FileNotFoundError:
        return 0, 0
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with open(partial, "r+b") as f:
            f.truncate(len(whole))
    lines = whole.splitlines()
    return len(lines), sum(1 for line in lines if line.startswith(b'{"error"'))


def cmd_map(ctx: Context) -> int:
    from globalfunc import distributed
    from globalfunc.catalog import Catalog
    from globalfunc.cli.call import LOCAL_HINT

    a = ctx.args
    source, target = Path(a.input), Path(a.output)
    check_paths(source, target)
    items = read_jsonl(source)
    partial = _partial(target)
    kept, failed = _kept(partial) if a.resume else (0, 0)
    if kept > len(items):
        raise InvalidRequest(
            f"{partial} holds {kept} results but {source} has only {len(items)} items; "
            "it is not this input's partial output: remove it, or run without --resume"
        )
    resources: dict[str, float] = {}
    if a.cpus is not None:
        resources["CPU"] = a.cpus
    if a.gpus is not None:
        resources["GPU"] = a.gpus
    if a.memory_mb is not None:
        resources["memory"] = a.memory_mb * 2**20
    finished = kept
    try:
        # the checks (name, resources, ...) and Ray's start, before the output is touched
        try:
            outcomes = distributed.stream(
                a.name,
                items[kept:],
                registry=Catalog(ctx.gfbase.registry, hint=LOCAL_HINT),
                resources=resources,
                address=a.ray_address,
                batch=a.batch,
                timeout=a.timeout,
                progress=not a.quiet,
                start=kept,
            )
        except KeyboardInterrupt:
            kept_note = f"; the {kept} results in {partial} are kept" if kept else ""
            sys.stderr.write(f"gf map: interrupted while Ray started: no item ran{kept_note}\n")
            return EXIT_INTERRUPTED
        # unbuffered: each finished line is on disk at once, so an interrupted or killed
        # map leaves every result finished so far readable in the .partial file
        with open(partial, "ab" if a.resume else "wb", buffering=0) as f:
            try:
                for outcome in outcomes:
                    f.write(outcome.json_line())
                    finished += 1
                    failed += not outcome.ok
            except KeyboardInterrupt:
                sys.stderr.write(
                    f"gf map: interrupted: the first {finished} of {len(items)} results are "
                    f"in {partial}; run the same command with --resume to do the rest\n"
                )
                return EXIT_INTERRUPTED
    finally:
        distributed.shutdown()
    os.replace(partial, target)
    out(f"{len(items)} items, {failed} failed: {a.output}")
    return EXIT_ERROR if failed and a.strict else EXIT_OK


def add_parsers(add: Any, _sub: Any = None) -> None:
    """The ``map`` command's parser."""
    sp = add(
        "map",
        cmd_map,
        "run a function over every line of a JSON Lines file on Ray; results in input order",
    )
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--input", required=True, metavar="IN.jsonl", help="one kwargs object a line")
    sp.add_argument("--output", required=True, metavar="OUT.jsonl", help="one result a line")
    sp.add_argument("--ray-address", help="a running Ray cluster (default: start a local Ray)")
    sp.add_argument("--cpus", type=float, help="CPUs each task asks for (Ray default 1)")
    sp.add_argument("--gpus", type=float, help="GPUs each task asks for")
    sp.add_argument("--memory-mb", type=int, help="memory each task asks for, MiB")
    sp.add_argument(
        "--batch", type=int, help="items per Ray task (default: 4 tasks per CPU, at most 100)"
    )
    sp.add_argument(
        "--timeout",
        type=float,
        help="seconds each item may run; one past it is stopped and written as "
        "ExecutionTimeout (default: none; with it, --batch defaults to 1)",
    )
    sp.add_argument(
        "--resume",
        action="store_true",
        help="keep the results already in OUT.jsonl.partial (an interrupted map's) and "
        "run only the items after them",
    )
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--strict", action="store_true", help="exit 1 when any item failed")
