"""``gf``: the command line of GlobalFunc (an edge: it reads settings and prints).

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
    gf aiges serve|create|check         the AIGES plugin and projects

Settings come from ``GF_*`` environment variables (see :mod:`globalfunc.settings`) and the
global options. A user error prints one line and exits 1; a usage error exits 2; a
traceback only with ``--debug``.

Modules, by job: :mod:`~globalfunc.cli.context` (what commands share),
:mod:`~globalfunc.cli.registry` (init ... commit), :mod:`~globalfunc.cli.call`,
:mod:`~globalfunc.cli.serving` (serve, worker, workers), :mod:`~globalfunc.cli.aiges`,
:mod:`~globalfunc.cli.main` (parser, dispatch, error lines).
"""

from globalfunc.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
