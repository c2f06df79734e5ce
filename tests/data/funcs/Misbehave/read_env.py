"""Read an environment variable: what a function could learn about its server."""

import os


def read_env(name=None):
    """Return the environment variable ``name`` (None when unset)."""
    return os.environ.get(name)
