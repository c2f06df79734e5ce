"""A function whose result is not JSON-serializable (a generator)."""


def unserializable(n: int = 3):
    """Return a generator over ``range(n)``: it cannot be sent as JSON."""
    return (i for i in range(n))
