def add_business_days(day: str, count: int):
    """Move a date forward by working days, skipping weekends."""
    import datetime
    d = datetime.date.fromisoformat(day)
    while count > 0:
        d += datetime.timedelta(days=1)
        if d.weekday() < 5:
            count -= 1
    return d.isoformat()
