def http_get_json(url: str, timeout: float = 10.0):
    """Download a URL and decode its JSON body."""
    import json, urllib.request
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())
