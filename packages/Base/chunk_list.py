"""Split a list into consecutive chunks of a fixed size."""

from typing import Any


def chunk_list(items: list[Any] | tuple = None, size: int = 1) -> list[list[Any]]:
    """Split ``items`` into consecutive chunks of ``size`` elements.

    ``chunk_list(items=[1, 2, 3, 4, 5], size=2)`` is ``[[1, 2], [3, 4], [5]]``; only the
    last chunk may be shorter.

    Args:
        items: The list (or tuple) to split; ``None`` is rejected.
        size: The number of elements per chunk; at least 1.

    Returns:
        A list of lists, ``[]`` for an empty input.

    Raises:
        ValueError: If ``items`` is ``None`` or ``size`` is less than 1.
        TypeError: If ``items`` is not a list or tuple, or ``size`` is not an int.
    """
    if items is None:
        raise ValueError("items is None; expected a list such as [1, 2, 3]")
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"items must be a list, got {type(items).__name__}: {items!r}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {type(size).__name__}: {size!r}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size!r}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]
