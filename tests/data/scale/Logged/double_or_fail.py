"""Twice its input, or a ValueError for one chosen input: the Ray map tests use it."""


def double_or_fail(x: int, bad: int = -1) -> int:
    """Return ``2 * x``; raise ``ValueError`` when ``x == bad``."""
    if x == bad:
        raise ValueError(f"x is {x}, the input chosen to fail")
    return 2 * x
