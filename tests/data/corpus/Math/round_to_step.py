def round_to_step(value: float, step: float):
    """Round a number to the nearest multiple of a step."""
    return round(value / step) * step
