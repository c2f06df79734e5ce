def days_between(start: str, end: str):
    """Number of days between two ISO dates."""
    import datetime
    d0 = datetime.date.fromisoformat(start)
    d1 = datetime.date.fromisoformat(end)
    return (d1 - d0).days
