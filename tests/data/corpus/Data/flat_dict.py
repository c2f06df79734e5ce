def flat_dict(data: dict, sep: str = "."):
    """Flatten a nested dictionary into dotted keys."""
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            for k2, v2 in flat_dict(v, sep).items():
                out[f"{k}{sep}{k2}"] = v2
        else:
            out[k] = v
    return out
