def write_json(data, path: str):
    """Write data to a file as indented JSON."""
    import json
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
