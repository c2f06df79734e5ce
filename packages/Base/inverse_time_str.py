"""Convert a ``YYYY-mm-dd HH:MM:SS`` local time string to a unix timestamp."""

import time


def inverse_time_str(time_str: str = None, bias_hours: float = 0) -> int | float:
    """Parse a local time string and return its unix timestamp plus ``bias_hours`` hours.

    Computes ``time.mktime(time.strptime(time_str, "%Y-%m-%d %H:%M:%S")) +
    bias_hours * 3600``, using the machine's local time zone (``TZ``). With ``TZ=UTC``,
    ``inverse_time_str(time_str="2024-02-15 11:11:11", bias_hours=-8)`` is ``1707966671``.
    ``time_str`` is the inverse.

    Args:
        time_str: The time, formatted as ``"%Y-%m-%d %H:%M:%S"``, e.g. ``"2024-02-15 11:11:11"``.
        bias_hours: Hours added to the result (may be negative or fractional), e.g. ``-8``
            to read a UTC+8 time on a UTC machine.

    Returns:
        The timestamp in seconds: an int when it is a whole number, else a float.

    Raises:
        ValueError: If ``time_str`` is ``None`` or does not match the format.
        TypeError: If ``time_str`` is not a str or ``bias_hours`` is not a number.
    """
    if time_str is None:
        raise ValueError("time_str is None; expected a str like '2024-02-15 11:11:11'")
    if not isinstance(time_str, str):
        raise TypeError(f"time_str must be a str, got {type(time_str).__name__}: {time_str!r}")
    if isinstance(bias_hours, bool) or not isinstance(bias_hours, (int, float)):
        raise TypeError(
            f"bias_hours must be a number, got {type(bias_hours).__name__}: {bias_hours!r}"
        )
    try:
        parsed = time.strptime(time_str, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise ValueError(
            f"time_str {time_str!r} does not match '%Y-%m-%d %H:%M:%S' (e.g. '2024-02-15 11:11:11')"
        ) from exc
    result = time.mktime(parsed) + bias_hours * 3600
    if float(result).is_integer():
        return int(result)
    return float(result)
