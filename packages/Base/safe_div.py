"""Divide two numbers, returning a default instead of failing on zero."""


def safe_div(numerator: float = None, denominator: float = None, default: float = 0.0) -> float:
    """Return ``numerator / denominator``, or ``default`` when ``denominator`` is 0.

    ``safe_div(numerator=1, denominator=4)`` is ``0.25``;
    ``safe_div(numerator=1, denominator=0)`` is ``0.0``.

    Args:
        numerator: The number to divide.
        denominator: The number to divide by.
        default: The value returned when ``denominator`` is zero.

    Returns:
        The quotient as a float, or ``default``.

    Raises:
        ValueError: If ``numerator`` or ``denominator`` is ``None``.
        TypeError: If an argument is not an int or float (bools are rejected).
    """
    if numerator is None or denominator is None:
        raise ValueError(
            f"numerator and denominator are required, got numerator={numerator!r}, "
            f"denominator={denominator!r}"
        )
    for name, value in (
        ("numerator", numerator),
        ("denominator", denominator),
        ("default", default),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    if denominator == 0:
        return default
    return numerator / denominator
