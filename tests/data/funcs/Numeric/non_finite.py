"""Return a float JSON cannot carry (NaN or Infinity), to test how results are checked."""


def non_finite(kind="nan", nested=False):
    """Return ``float(kind)`` ("nan", "inf", "-inf"), or ``{"values": [1.0, it]}`` if nested."""
    value = float(kind)
    return {"values": [1.0, value]} if nested else value
