def group_by_key(rows: list, key: str):
    """Group a list of records by the value of one field."""
    out = {}
    for row in rows:
        out.setdefault(row[key], []).append(row)
    return out
