def strip_html_tags(html: str):
    """Remove HTML tags from markup and keep the visible text."""
    import re
    return re.sub(r"<[^>]+>", "", html)
