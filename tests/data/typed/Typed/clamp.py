"""Clamp a number into a range."""


def clamp(x: float, low: float = 0.0, high: float = 1.0) -> float:
    """Return ``x`` limited to ``[low, high]`` (``low`` wins when ``low > high``)."""
    return max(low, min(x, high))
