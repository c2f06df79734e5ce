"""A function that raises a BaseException that is not an Exception."""


def raise_base(kind: str = "KeyboardInterrupt") -> None:
    """Raise ``KeyboardInterrupt``, ``GeneratorExit`` or a bare ``BaseException``."""
    raise {"KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit}.get(
        kind, BaseException
    )("raised on purpose")
