"""Hangs on one chosen item."""

import time


def hang(x: int, bad: int = -1) -> int:
    """Sleep for an hour when ``x == bad``; else return ``x``."""
    if x == bad:
        time.sleep(3600)
    return x
