def dedup_keep_order(items: list):
    """Remove duplicates from a list, keeping the first occurrence order."""
    return list(dict.fromkeys(items))
