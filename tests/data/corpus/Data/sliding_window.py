def sliding_window(items: list, width: int):
    """Every run of consecutive items of a fixed width."""
    return [items[i : i + width] for i in range(len(items) - width + 1)]
