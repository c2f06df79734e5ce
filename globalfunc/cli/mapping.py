"""``gf map NAME --input in.jsonl --output out.jsonl``: one function over many inputs, on Ray.

Each input line is a JSON object of keyword arguments; each output line, in input order,
is ``{"result": ...}`` or the item's error (``{"error": "ExecutionError", "message": ...}``),
so one failing item never stops the others. The function is looked up in this folder's
registry (as ``gf call`` does) and runs through :func:`globalfunc.distributed.map`: on the
cluster at ``--ray-address``, or on a local Ray started for the command.

Not here: Ray itself, or how a task runs (:mod:`globalfunc.distributed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from globalfunc import jsoncodec
from globalfunc.cli.context import EXIT_ERROR, EXIT_OK, Context, out
from globalfunc.errors import GlobalFuncError, InvalidRequest

__all__ = ["add_parsers", "cmd_map", "read_jsonl"]


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


def cmd_map(ctx: Context) -> int:
    from globalfunc import distributed
    from globalfunc.catalog import Catalog
    from globalfunc.cli.call import LOCAL_HINT

    a = ctx.args
    items = read_jsonl(Path(a.input))
    resources: dict[str, float] = {}
    if a.cpus is not None:
        resources["CPU"] = a.cpus
    if a.gpus is not None:
        resources["GPU"] = a.gpus
    if a.memory_mb is not None:
        resources["memory"] = a.memory_mb * 2**20
    results = distributed.map(
        a.name,
        items,
        registry=Catalog(ctx.gfbase.registry, hint=LOCAL_HINT),
        resources=resources,
        address=a.ray_address,
        batch=a.batch,
        progress=not a.quiet,
    )
    failed = 0
    with open(a.output, "wb") as f:
        for value in results:
            if isinstance(value, GlobalFuncError):
                failed += 1
                f.write(orjson.dumps(value.to_dict()) + b"\n")
            else:
                f.write(b'{"result":' + jsoncodec.dumps(value) + b"}\n")
    out(f"{len(results)} items, {failed} failed: {a.output}")
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
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--strict", action="store_true", help="exit 1 when any item failed")
