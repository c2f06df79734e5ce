def mean(values: list):
    """Arithmetic average of numbers."""
    return sum(values) / len(values)
