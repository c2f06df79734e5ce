"""A function that raises SystemExit, which must not stop a server running it inline."""

import sys


def exit_raise(code: int = 2) -> None:
    """Call ``sys.exit(code)``."""
    sys.exit(code)
