"""Flatten rows of integers."""


def flatten(rows: list[list[int]], reverse: bool = False) -> list[int]:
    """Return the items of every row in order (reversed when ``reverse``)."""
    out = [item for row in rows for item in row]
    return out[::-1] if reverse else out
