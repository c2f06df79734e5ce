def domain_of(url: str):
    """The host name part of a URL."""
    import urllib.parse
    return urllib.parse.urlsplit(url).hostname
