"""An untyped, seed-style function: any JSON value in, the same value out."""


def echo(value=None):
    """Return ``value`` unchanged."""
    return value
