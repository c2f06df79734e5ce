def parse_query_string(url: str):
    """Turn the query part of a URL into a dictionary of parameters."""
    import urllib.parse
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
