def extract_emails(text: str):
    """Find every e-mail address mentioned in a text."""
    import re
    return re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
