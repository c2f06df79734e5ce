"""Negate a flag."""


def negate(flag: bool) -> bool:
    """Return ``not flag``."""
    return not flag
