def parse_duration(text: str):
    """Read a duration such as "1h30m" and return seconds."""
    import re
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))
