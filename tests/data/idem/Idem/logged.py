"""A call that leaves a line per run: the scale-out tests count runs by it."""

import os
import time


def logged(seq: int, path: str, seconds: float = 0.0) -> int:
    """Append ``<seq> <pid>`` to the file ``path`` (a run that started), sleep ``seconds``,
    return ``seq``."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{seq} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    if seconds:
        time.sleep(seconds)
    return seq
