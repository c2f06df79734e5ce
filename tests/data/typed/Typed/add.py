"""Add two integers."""


def add(a: int, b: int = 0) -> int:
    """Return ``a + b`` (integers of any size)."""
    return a + b
