"""Greet someone, or everyone."""


def greet(name: str | None = None, punctuation: str = "!") -> str:
    """Return ``Hello, <name><punctuation>``; ``None`` greets the world."""
    return f"Hello, {'world' if name is None else name}{punctuation}"
