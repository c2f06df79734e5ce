"""Return bytes, to test the base64 marker."""


def make_bytes(n: int = 4) -> bytes:
    """Return ``bytes(range(n))``."""
    return bytes(range(n))
