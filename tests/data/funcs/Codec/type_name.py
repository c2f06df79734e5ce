"""Name the Python type of the value it received, to test how arguments arrive."""


def type_name(value=None) -> str:
    """Return ``type(value).__name__``, e.g. ``"bytes"`` or ``"datetime"``."""
    return type(value).__name__
