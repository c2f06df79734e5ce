def is_weekend(day: str):
    """Tell whether an ISO date falls on Saturday or Sunday."""
    import datetime
    return datetime.date.fromisoformat(day).weekday() >= 5
