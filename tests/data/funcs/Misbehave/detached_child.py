"""A function that leaves a process behind in a session of its own."""

import subprocess


def detached_child(seconds: int = 600) -> int:
    """Start ``sleep seconds`` in a new session (out of its worker's process group)."""
    return subprocess.Popen(["sleep", str(seconds)], start_new_session=True).pid
