def clamp(value: float, low: float, high: float):
    """Limit a number to a range."""
    return max(low, min(high, value))
