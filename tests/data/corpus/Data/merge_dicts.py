def merge_dicts(a: dict, b: dict):
    """Deep-merge two dictionaries; values of the second win."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
