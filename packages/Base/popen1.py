"""Run a shell command and return the first word it printed."""

import os


def popen1(some_cmd: str = None) -> str:
    """Run ``some_cmd`` through the shell and return the first word of its stdout.

    Same as ``popen`` followed by taking the first whitespace-separated word; handy for
    commands like ``"nproc"`` or ``"du -s /tmp"``.

    Args:
        some_cmd: The shell command line, e.g. ``"echo hello world"``.

    Returns:
        The first whitespace-separated word of stdout (``"hello"``), or ``""`` if the
        command printed nothing but whitespace.

    Raises:
        ValueError: If ``some_cmd`` is ``None`` or blank.
        TypeError: If ``some_cmd`` is not a str.
    """
    if some_cmd is None:
        raise ValueError("some_cmd is None; expected a shell command such as 'echo hello'")
    if not isinstance(some_cmd, str):
        raise TypeError(f"some_cmd must be a str, got {type(some_cmd).__name__}: {some_cmd!r}")
    if not some_cmd.strip():
        raise ValueError(f"some_cmd is blank: {some_cmd!r}")
    with os.popen(some_cmd) as pipe:
        words = pipe.read().split()
    return words[0] if words else ""
