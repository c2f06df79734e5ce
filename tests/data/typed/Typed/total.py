"""Sum a list of integers."""


def total(values: list[int]) -> int:
    """Return the sum of ``values`` (0 for an empty list)."""
    return sum(values)
