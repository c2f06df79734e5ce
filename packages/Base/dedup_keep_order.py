"""Remove duplicates from a list, keeping the first occurrence of each item."""

from typing import Any


def dedup_keep_order(items: list[Any] | tuple = None) -> list[Any]:
    """Return ``items`` without duplicates, in order of first occurrence.

    ``dedup_keep_order(items=[3, 1, 3, 2, 1])`` is ``[3, 1, 2]``. Unhashable items such
    as dicts and lists (common in JSON input) are compared by equality.

    Args:
        items: The list (or tuple) to deduplicate; ``None`` is rejected.

    Returns:
        A new list; the input is not changed.

    Raises:
        ValueError: If ``items`` is ``None``.
        TypeError: If ``items`` is not a list or tuple.
    """
    if items is None:
        raise ValueError("items is None; expected a list such as [1, 1, 2]")
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"items must be a list, got {type(items).__name__}: {items!r}")
    seen: set[Any] = set()
    seen_unhashable: list[Any] = []
    result: list[Any] = []
    for item in items:
        try:
            if item in seen:
                continue
            seen.add(item)
        except TypeError:
            if item in seen_unhashable:
                continue
            seen_unhashable.append(item)
        result.append(item)
    return result
