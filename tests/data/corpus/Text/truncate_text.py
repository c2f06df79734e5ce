def truncate_text(text: str, width: int = 80):
    """Shorten text to a maximum width, adding an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"
