def transpose_matrix(rows: list):
    """Swap rows and columns of a matrix given as lists."""
    return [list(col) for col in zip(*rows)]
