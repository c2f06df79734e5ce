"""Report whether the process running it is dumpable (Linux), to test the server's hardening."""

import ctypes


def dumpable():
    """Return ``prctl(PR_GET_DUMPABLE)`` of this process: 1 dumpable, 0 not, -1 unknown."""
    try:
        return int(ctypes.CDLL(None, use_errno=True).prctl(3, 0, 0, 0, 0))
    except (OSError, AttributeError):
        return -1
