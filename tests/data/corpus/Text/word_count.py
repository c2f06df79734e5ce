def word_count(text: str):
    """Count the words in a piece of text."""
    return len(text.split())
