def utc_now_iso():
    """The current UTC time as an ISO 8601 string."""
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).isoformat()
