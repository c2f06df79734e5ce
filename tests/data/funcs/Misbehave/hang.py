"""A function that never returns (until killed), to test call timeouts."""

import time


def hang(seconds: float = 3600.0) -> str:
    """Sleep ``seconds`` (an hour by default) and return ``"woke"``."""
    time.sleep(seconds)
    return "woke"
