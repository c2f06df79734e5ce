"""The serving process's id, to tell which server answered."""

import os


def whoami() -> int:
    """Return ``os.getpid()``."""
    return os.getpid()
