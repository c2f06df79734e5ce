def invert_dict(data: dict):
    """Swap keys and values of a dictionary."""
    return {v: k for k, v in data.items()}
