"""Return the hex MD5 digest of a string."""

import hashlib


def md5_text(text: str = None, encoding: str = "utf-8") -> str:
    """Return the 32-character lowercase hex MD5 digest of ``text``.

    Meant for cache keys and checksums, not for security.

    Args:
        text: The string to hash; ``""`` is allowed, ``None`` is rejected.
        encoding: The encoding used to turn ``text`` into bytes.

    Returns:
        The hex digest, e.g. ``"5d41402abc4b2a76b9719d911017c592"`` for ``"hello"``.

    Raises:
        ValueError: If ``text`` is ``None`` or ``encoding`` is unknown.
        TypeError: If ``text`` or ``encoding`` is not a str.
        UnicodeEncodeError: If ``text`` cannot be encoded with ``encoding``.
    """
    if text is None:
        raise ValueError("text is None; expected a str")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a str, got {type(encoding).__name__}: {encoding!r}")
    try:
        data = text.encode(encoding)
    except LookupError as exc:
        raise ValueError(f"unknown encoding {encoding!r}") from exc
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
