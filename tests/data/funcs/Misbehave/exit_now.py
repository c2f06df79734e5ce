"""A function that ends its process at once with ``os._exit``, to test worker replacement."""

import os


def exit_now(code: int = 3) -> None:
    """Call ``os._exit(code)``: no cleanup, no exception."""
    os._exit(code)
