"""What every ``gf`` command shares: the parser class, the :class:`Context`, output helpers.

The context is built once from ``GF_*`` settings and the global options; it opens the
registry (through the ``gfbase`` facade) only when a command asks for it, so commands
that do not need storage never import it.

Not here: the commands themselves (the other modules of :mod:`globalfunc.cli`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from globalfunc.errors import ConfigError
from globalfunc.settings import Settings

if TYPE_CHECKING:
    from globalfunc.storage import Storage

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "Context", "Parser", "out", "short", "when"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``gf: usage error:`` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"gf: usage error: {message}\n")


class Context:
    """What every command needs, built once from settings and global options."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.root = Path(args.root or settings.root)
        self.tier1 = args.tier1 or settings.tier1
        self.progress = sys.stderr.isatty()
        self._gfbase: Any = None

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(
                f"packages root {str(self.root)!r} is not a folder; pass --root DIR or set GF_ROOT"
            )

    def storage_url(self) -> str:
        from globalfunc.storage.base import combine_urls

        durable = self.args.storage or self.settings.storage_url
        if durable is None:
            from gfbase.facade import default_storage_url

            self._check_root()
            durable = default_storage_url(self.root)
        return combine_urls(durable, self.settings.cache_url)

    def open_storage(self) -> Storage:
        """The storage the settings and options name (tiered when GF_CACHE_URL is set)."""
        from globalfunc.storage import is_http_url, open_storage

        url = self.storage_url()
        return open_storage(
            url,
            timeout=self.settings.storage_timeout,
            cache_ttl=self.settings.cache_ttl,
            token=self.token() if is_http_url(url) else None,  # a GlobalFunc server's
        )

    @property
    def gfbase(self) -> Any:
        if self._gfbase is None:
            from gfbase import GFBase

            self._check_root()
            self._gfbase = GFBase(
                self.root,
                tier1=self.tier1,
                storage=self.open_storage(),
                max_file_size=self.settings.max_file_size,
            )
        return self._gfbase

    def token(self) -> str | None:
        """The bearer token from the settings: GF_TOKEN or GF_TOKEN_FILE (never printed)."""
        return self.settings.bearer_token()

    def close(self) -> None:
        if self._gfbase is not None:
            self._gfbase.close()


def out(text: str = "") -> None:
    """One line of a command's output, on stdout."""
    sys.stdout.write(text + "\n")


def short(sha: str) -> str:
    return sha[:12]


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"
