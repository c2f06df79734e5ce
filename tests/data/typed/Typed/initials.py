"""The initials of a name (the seed's ``x: str = None`` placeholder: the text is required)."""


def initials(text: str = None) -> str:  # noqa: RUF013 - the seed's placeholder: required
    """Return the first letter of every word of ``text``, upper-cased."""
    return "".join(word[0].upper() for word in text.split())
