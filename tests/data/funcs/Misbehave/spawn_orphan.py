"""A function that leaves a process running behind it, to test that it dies with its worker."""

import subprocess


def spawn_orphan(seconds: int = 600) -> int:
    """Start ``sleep seconds`` without waiting for it; return its pid."""
    return subprocess.Popen(["sleep", str(seconds)], start_new_session=False).pid
