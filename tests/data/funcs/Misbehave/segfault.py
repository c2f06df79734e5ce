"""A function that crashes its process with a segmentation fault (reads an unmapped address)."""

import ctypes


def segfault() -> int:
    """Dereference the address 8 through ctypes; the process dies with SIGSEGV."""
    return ctypes.c_int64.from_address(8).value
