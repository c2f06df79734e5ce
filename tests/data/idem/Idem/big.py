"""A result of a chosen size: the idempotency tests check what a worker keeps of it."""


def big(kib: int) -> str:
    """A string of ``kib`` KiB."""
    return "x" * (kib * 1024)
