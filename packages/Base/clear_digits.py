"""Remove all digits from a string."""


def clear_digits(text: str = None) -> str:
    """Return ``text`` with every digit character removed.

    ``clear_digits(text="abc123def4")`` is ``"abcdef"``. Unicode digits such as ``"٣"``
    are removed too.

    Args:
        text: The string to clean; ``None`` is rejected.

    Returns:
        The string without digits.

    Raises:
        ValueError: If ``text`` is ``None``.
        TypeError: If ``text`` is not a str.
    """
    if text is None:
        raise ValueError("text is None; expected a str such as 'abc123'")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    return "".join(char for char in text if not char.isdigit())
