"""A function whose process dies a moment after it has answered, to test the pool under crashes."""

import os
import threading


def exit_after_return(delay: float = 0.0002, code: int = 5) -> int:
    """Return 1, then end the process with ``os._exit(code)`` ``delay`` seconds later."""
    threading.Timer(delay, lambda: os._exit(code)).start()
    return 1
