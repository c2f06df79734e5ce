def is_palindrome(text: str):
    """Tell whether a string reads the same backwards."""
    clean = "".join(c.lower() for c in text if c.isalnum())
    return clean == clean[::-1]
