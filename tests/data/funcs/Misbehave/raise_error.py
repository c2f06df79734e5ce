"""A function that always raises, to test how errors travel."""


def raise_error(message: str = "boom") -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)
