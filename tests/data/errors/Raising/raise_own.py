"""Raise an exception class defined in the function's own module (no client can import it)."""


class OwnError(Exception):
    """A user's own exception type."""


def raise_own(message: str = "mine") -> None:
    """Raise ``OwnError(message)``."""
    raise OwnError(message)
