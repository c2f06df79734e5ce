"""Which process answered: the worker tests tell workers apart by it."""

import os


def whoami():
    """Return the pid of the process that ran the call."""
    return os.getpid()
