"""Run a shell command and return what it printed."""

import os


def popen(some_cmd: str = None) -> str:
    """Run ``some_cmd`` through the shell (like ``os.popen``) and return its stdout.

    Only stdout is captured; stderr goes to the caller's stderr. The exit status is not
    checked. Never pass untrusted text: the command runs in a shell.

    Args:
        some_cmd: The shell command line, e.g. ``"echo hello"``.

    Returns:
        Everything the command wrote to stdout, e.g. ``"hello"`` plus a newline.

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
        return pipe.read()
