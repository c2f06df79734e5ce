"""The key with the largest count."""


def largest(counts: dict[str, int]) -> str | None:
    """Return the key of the largest value in ``counts`` (the first on a tie), or None if empty."""
    best: str | None = None
    for key, value in counts.items():
        if best is None or value > counts[best]:
            best = key
    return best
