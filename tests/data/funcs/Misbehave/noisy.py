"""A function that prints to stdout and stderr before returning, to test output isolation."""

import sys


def noisy(value: int = 1) -> int:
    """Print a few lines (stdout and stderr) and return ``value``."""
    print("noise on stdout " * 100)
    print("noise on stderr", file=sys.stderr)
    sys.stdout.flush()
    return value
