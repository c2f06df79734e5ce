def timestamp_to_str(ts: float):
    """Format a unix timestamp as a readable date and time string."""
    import datetime
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
