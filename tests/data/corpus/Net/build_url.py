def build_url(base: str, params: dict):
    """Append encoded query parameters to a base URL."""
    import urllib.parse
    return base + "?" + urllib.parse.urlencode(params)
