"""Change the case of a text."""

from typing import Literal


def convert_case(text: str, mode: Literal["upper", "lower", "title"] = "lower") -> str:
    """Return ``text`` in upper, lower or title case."""
    if mode == "upper":
        return text.upper()
    if mode == "title":
        return text.title()
    return text.lower()
