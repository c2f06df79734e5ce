def top_n(counts: dict, n: int = 5):
    """The n keys with the largest counts."""
    return sorted(counts, key=counts.get, reverse=True)[:n]
