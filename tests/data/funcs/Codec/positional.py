"""A function with positional-only and keyword-only parameters, to test argument checks."""


def positional(a, b, /, c=3, *, d=4):
    """Return ``[a, b, c, d]``."""
    return [a, b, c, d]
