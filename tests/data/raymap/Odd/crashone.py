"""Exits its process on one chosen item, logging every run."""

import os


def crashone(x: int, bad: int = -1, path: str = "") -> int:
    """Append ``x`` to ``path`` (when given); ``os._exit(3)`` when ``x == bad``; else ``x``."""
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{x}\n".encode())
        finally:
            os.close(fd)
    if x == bad:
        os._exit(3)
    return x
