def inverse_time_str(time_str: str, bias_hours: int = 0):
    """Parse a "YYYY-MM-DD HH:MM:SS" time string into a unix timestamp."""
    import datetime
    dt = datetime.datetime.strptime(time_str, "%Y-%m-%d %H:%M:%S")
    return int(dt.timestamp()) + bias_hours * 3600
