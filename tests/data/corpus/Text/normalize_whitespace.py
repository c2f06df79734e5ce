def normalize_whitespace(text: str):
    """Collapse runs of spaces, tabs and newlines into single spaces."""
    return " ".join(text.split())
