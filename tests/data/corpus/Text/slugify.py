def slugify(text: str):
    """Turn a title into a URL slug: lower case words joined by hyphens."""
    import re
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)
