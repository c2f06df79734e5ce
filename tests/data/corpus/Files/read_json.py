def read_json(path: str):
    """Read and parse a JSON file."""
    import json
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
