"""``gf`` commands over the registry: init, scan, save, gen, ls, show, history, search,
dupes, describe, rm, commit.

Each command reads its options from the :class:`~globalfunc.cli.context.Context`, works
through the ``gfbase`` facade (opened on first use) and prints plain lines. Errors are
raised as :mod:`globalfunc.errors` classes; :func:`globalfunc.cli.main` prints them.

Not here: calling functions (:mod:`~globalfunc.cli.call`), serving
(:mod:`~globalfunc.cli.serving`), AIGES (:mod:`~globalfunc.cli.aiges`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from globalfunc.cli.context import EXIT_ERROR, EXIT_OK, Context, out, short, when
from globalfunc.errors import FunctionNotFound, InvalidRequest
from globalfunc.fingerprint import DuplicateFunction
from globalfunc.record import FunctionRecord

__all__ = ["add_parsers"]

DIRTY_NOTE = "dirty (saved with changes not in that commit)"
"""Marks a version saved from a file with uncommitted changes (``record.dirty``)."""

Add = Callable[[str, Callable[[Context], int], str], argparse.ArgumentParser]


def cmd_init(ctx: Context) -> int:
    from globalfunc.workspace import Workspace

    target = Path(ctx.args.dir or ".")
    if target.exists() and not target.is_dir():
        raise InvalidRequest(
            f"{str(target)!r} exists and is not a folder; give gf init a new or existing folder"
        )
    ws = Workspace.init(target, sample=not ctx.args.no_sample)
    out(f"initialized packages repository in {ws.root}")
    if not ctx.args.no_sample:
        out(f"sample function: Sample/hello.py; try: gf --root {ctx.args.dir or '.'} save --all")
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
        out(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, info in sorted(result.functions.items()):
            out(f"{key[:-3]}{info.signature}  {short(info.sha256)}")
        for problem in result.problems:
            out(f"problem: {problem}")
        out(f"{len(result.functions)} functions, {len(result.problems)} problems")
    return EXIT_ERROR if result.problems and ctx.args.strict else EXIT_OK


def cmd_save(ctx: Context) -> int:
    if not ctx.args.names and not ctx.args.all:
        raise InvalidRequest("name the functions to save (Base.to_pickle ...) or pass --all")
    with warnings.catch_warnings():  # said below, one line each
        warnings.simplefilter("ignore", DuplicateFunction)
        saved, result = ctx.gfbase.save_all(
            None if ctx.args.all else ctx.args.names, progress=ctx.progress
        )
    added = [s for s in saved if s.added]
    for s in added:
        out(f"saved {s.key} {short(s.sha256)}")
    for s in added:
        if s.duplicates:
            _warn(f"{s.key} has the same logic as {', '.join(s.duplicates)}; reuse it? (gf dupes)")
    for problem in result.problems if ctx.args.all else []:
        out(f"skipped: {problem}")
    branch = ctx.gfbase.registry.branch
    out(f"{len(added)} saved, {len(saved) - len(added)} unchanged on branch {branch!r}")
    return EXIT_OK


def _warn(text: str) -> None:
    sys.stderr.write(f"gf: warning: {text}\n")


def cmd_gen(ctx: Context) -> int:
    target = Path(ctx.args.to)
    if target.exists() and not target.is_dir():
        raise InvalidRequest(
            f"--to {str(target)!r} is a file; give the folder to write {ctx.args.name} into "
            "(its package folder is made inside it)"
        )
    path = ctx.gfbase.registry.materialize(
        ctx.args.name, target, branch=ctx.args.branch, sha256=ctx.args.hash
    )
    out(f"wrote {path}")
    return EXIT_OK


def _summary(r: FunctionRecord) -> str:
    if r.description:
        return r.description.splitlines()[0]
    return (r.docstring or "").strip().splitlines()[0] if (r.docstring or "").strip() else ""


def cmd_ls(ctx: Context) -> int:
    records: list[FunctionRecord] = ctx.gfbase.registry.list(
        ctx.args.package, branch=ctx.args.branch, all_branches=ctx.args.all_branches
    )
    for r in records:
        branch = f" [{r.branch}]" if ctx.args.all_branches else ""
        out(f"{r.package}.{r.name}{r.signature}{branch}  {_summary(r)}")
    if not records:
        out("no functions registered; save some with 'gf save --all'")
    return EXIT_OK


def cmd_show(ctx: Context) -> int:
    reg = ctx.gfbase.registry
    r = reg.get(ctx.args.name, branch=ctx.args.branch, sha256=ctx.args.hash)
    out(f"{r.key}")
    out(f"  {r.package}.{r.name}{r.signature}")
    out(
        f"  sha256 {r.sha256}  md5 {r.md5}  saved {when(r.saved_at)}  commit {(r.commit or '-')[:12]}"
        + (f"  {DIRTY_NOTE}" if r.dirty else "")
    )
    if r.imports:
        out(f"  imports: {', '.join(r.imports)}")
    if r.description:
        out(f"  description: {r.description}")
    if r.docstring:
        out("")
        for line in r.docstring.splitlines():
            out(f"  {line}")
    out("")
    out(r.code.rstrip("\n"))
    out("")
    _print_history(reg.history(ctx.args.name, branch=ctx.args.branch))
    return EXIT_OK


def _print_history(history: Sequence[FunctionRecord]) -> None:
    out(f"history ({len(history)} versions, newest first):")
    for h in history:
        mark = ("  deleted" if h.deleted else "") + (f"  {DIRTY_NOTE}" if h.dirty else "")
        if h.description:  # descriptions are versioned with the record
            mark += f"  description: {h.description!r}"
        out(f"  {when(h.saved_at)}  {short(h.sha256)}  commit {(h.commit or '-')[:12]}{mark}")


def cmd_history(ctx: Context) -> int:
    history = ctx.gfbase.registry.history(ctx.args.name, branch=ctx.args.branch)
    if not history:
        raise FunctionNotFound(f"no versions of {ctx.args.name} on this branch")
    _print_history(history)
    return EXIT_OK


def cmd_search(ctx: Context) -> int:
    hits = ctx.gfbase.registry.search(
        ctx.args.query, limit=ctx.args.limit, package=ctx.args.package, branch=ctx.args.branch
    )
    for r in hits:
        out(f"{r.package}.{r.name}{r.signature}  [{r.branch}]  {_summary(r)}")
    if not hits:
        out(f"nothing matches {ctx.args.query!r}")
    return EXIT_OK


def cmd_dupes(ctx: Context) -> int:
    groups = ctx.gfbase.registry.duplicates(package=ctx.args.package, branch=ctx.args.branch)
    if ctx.args.json:
        body = [
            {"fingerprint": g.fingerprint, "functions": [_dupe_entry(r) for r in g.records]}
            for g in groups
        ]
        out(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    for g in groups:
        out(f"same logic ({g.fingerprint[:12]}):")
        for r in g.records:
            out(f"  {r.package}.{r.name}{r.signature}  [{r.branch}]  {short(r.sha256)}")
    out(f"{len(groups)} group(s) of duplicates" if groups else "no duplicates")
    return EXIT_OK


def _dupe_entry(r: FunctionRecord) -> dict[str, str]:
    return {"name": f"{r.package}.{r.name}", "branch": r.branch, "key": r.key, "sha256": r.sha256}


def cmd_describe(ctx: Context) -> int:
    reg = ctx.gfbase.registry
    result = reg.describe(ctx.args.name, ctx.args.text, branch=ctx.args.branch)
    text = reg.get(ctx.args.name, branch=ctx.args.branch).description
    if result.added:
        out(
            f"described {result.key}: {text!r}"
            if text
            else f"removed the description of {result.key}"
        )
    else:
        out(f"{result.key} already has that description")
    return EXIT_OK


def cmd_rm(ctx: Context) -> int:
    reg = ctx.gfbase.registry
    if not reg.delete(ctx.args.name, branch=ctx.args.branch):
        raise FunctionNotFound(
            f"no live function {ctx.args.name} on branch {ctx.args.branch or reg.branch!r}"
        )
    out(f"deleted {reg.key(ctx.args.name, ctx.args.branch)} (history kept: gf history)")
    return EXIT_OK


def cmd_commit(ctx: Context) -> int:
    result = ctx.gfbase.commit(ctx.args.message, push=not ctx.args.no_push)
    if result.sha is None:
        out("nothing to commit")
    else:
        pushed = f", pushed to {result.remote}" if result.pushed else ""
        out(f"committed {result.sha[:12]} {result.message!r}{pushed}")
    return EXIT_OK


def add_parsers(add: Add, _sub: Any = None) -> None:
    """The registry commands' parsers."""
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

    sp = add(
        "search",
        cmd_search,
        "ranked search over names, descriptions, docstrings, signatures and code",
    )
    sp.add_argument("query")
    sp.add_argument("--limit", type=int, default=20)
    sp.add_argument("--package", help="only this package")
    sp.add_argument("--branch", help="only this branch (default: every branch)")

    sp = add("dupes", cmd_dupes, "list functions with the same logic under other names")
    sp.add_argument("--package", help="only groups holding a function of this package")
    sp.add_argument("--branch", help="only groups holding a function on this branch")
    sp.add_argument("--json", action="store_true", help="machine-readable output")

    sp = add("describe", cmd_describe, "give a function a description (a new version)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument(
        "text", nargs="?", help="the description ('' removes it; default: the docstring's summary)"
    )
    sp.add_argument("--branch")

    sp = add("rm", cmd_rm, "delete a function from the registry (a tombstone; history is kept)")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--branch")

    sp = add("commit", cmd_commit, "commit everything under the root (and push if a remote exists)")
    sp.add_argument("-m", "--message", required=True)
    sp.add_argument("--no-push", action="store_true")
