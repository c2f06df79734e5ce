"""Turn a string into a lowercase ASCII slug such as ``hello-world``."""

import re
import unicodedata


def slug(text: str = None, sep: str = "-", max_length: int = 0) -> str:
    """Return a lowercase ASCII slug of ``text`` for URLs and file names.

    Accents are stripped (``"Café"`` gives ``"cafe"``), characters with no ASCII form are
    dropped, and every run of other characters becomes one ``sep``.
    ``slug(text="  Hello, World!  ")`` is ``"hello-world"``.

    Args:
        text: The string to convert; ``None`` is rejected.
        sep: The separator between words.
        max_length: Cut the slug to at most this many characters (without a trailing
            ``sep``); ``0`` means no limit.

    Returns:
        The slug; ``""`` if ``text`` has no ASCII letters or digits.

    Raises:
        ValueError: If ``text`` is ``None`` or ``max_length`` is negative.
        TypeError: If ``text`` or ``sep`` is not a str, or ``max_length`` is not an int.
    """
    if text is None:
        raise ValueError("text is None; expected a str such as 'Hello World'")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    if not isinstance(sep, str):
        raise TypeError(f"sep must be a str, got {type(sep).__name__}: {sep!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise TypeError(
            f"max_length must be an int, got {type(max_length).__name__}: {max_length!r}"
        )
    if max_length < 0:
        raise ValueError(f"max_length must be 0 (no limit) or more, got {max_length!r}")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    result = sep.join(words)
    if max_length:
        result = result[:max_length]
        if sep:
            while result.endswith(sep):
                result = result[: -len(sep)]
    return result
