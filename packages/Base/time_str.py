"""Format a unix timestamp as a local time string (the inverse of ``inverse_time_str``)."""

import time


def time_str(
    timestamp: float | None = None,
    time_format: str = "%Y-%m-%d %H:%M:%S",
    bias_hours: float = 0,
) -> str:
    """Format ``timestamp - bias_hours * 3600`` as local time with ``time_format``.

    The inverse of ``inverse_time_str``: for the default format,
    ``inverse_time_str(time_str=time_str(timestamp=t, bias_hours=b), bias_hours=b) == t``
    for whole-second ``t``. With ``TZ=UTC``, ``time_str(timestamp=1707966671,
    bias_hours=-8)`` is ``"2024-02-15 11:11:11"``.

    Args:
        timestamp: Seconds since the epoch; ``None`` means the current time.
        time_format: A ``time.strftime`` format, e.g. ``"%Y-%m-%d"``.
        bias_hours: Hours subtracted before formatting (may be negative or fractional).

    Returns:
        The formatted time string.

    Raises:
        TypeError: If ``timestamp`` or ``bias_hours`` is not a number, or ``time_format``
            is not a str.
        ValueError: If the timestamp is out of the platform's range.
    """
    if timestamp is None:
        timestamp = time.time()
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise TypeError(
            f"timestamp must be a number, got {type(timestamp).__name__}: {timestamp!r}"
        )
    if isinstance(bias_hours, bool) or not isinstance(bias_hours, (int, float)):
        raise TypeError(
            f"bias_hours must be a number, got {type(bias_hours).__name__}: {bias_hours!r}"
        )
    if not isinstance(time_format, str):
        raise TypeError(
            f"time_format must be a str, got {type(time_format).__name__}: {time_format!r}"
        )
    seconds = timestamp - bias_hours * 3600
    try:
        local = time.localtime(seconds)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"timestamp {timestamp!r} is out of range for this platform") from exc
    return time.strftime(time_format, local)
