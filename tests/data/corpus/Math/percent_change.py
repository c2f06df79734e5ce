def percent_change(old: float, new: float):
    """Relative change from an old value to a new one, in percent."""
    return (new - old) / old * 100
