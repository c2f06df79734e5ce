"""Return the arguments it was given, to test JSON translation both ways."""


def echo(value=None, **extra):
    """Return ``value`` unchanged, or ``(value, extra)`` when extra keywords were given."""
    if extra:
        return (value, extra)
    return value
