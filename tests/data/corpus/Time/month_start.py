def month_start(day: str):
    """First day of the month of a date."""
    return day[:8] + "01"
