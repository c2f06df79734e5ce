def chunk_list(items: list, size: int):
    """Split a list into consecutive chunks of a given size."""
    return [items[i : i + size] for i in range(0, len(items), size)]
