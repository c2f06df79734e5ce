"""Its argument back: the idempotency tests reuse a key for other arguments with it."""


def echo(user: str) -> str:
    """Return ``user``'s secret."""
    return f"secret of {user}"
