"""Raise a built-in exception chosen by name, to test that local and remote errors match."""

import builtins


def raise_builtin(kind: str, message: str = "boom") -> None:
    """Raise ``builtins.<kind>(message)`` (``ValueError``, ``KeyError``, ...)."""
    raise getattr(builtins, kind)(message)
