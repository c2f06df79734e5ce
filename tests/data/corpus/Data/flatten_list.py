def flatten_list(nested: list):
    """Flatten a list of lists into one list."""
    return [x for sub in nested for x in sub]
