"""A function that tries every way open to its process to learn the server's token."""

import os
from pathlib import Path


def steal_token(token_file: str = "") -> dict[str, str]:
    """What this process could read: its environment, the token file, other processes'
    environments and command lines (the server's first). Each value is text or an error."""
    found: dict[str, str] = {"env": repr(sorted(os.environ.items()))}
    if token_file:
        try:
            found["token_file"] = Path(token_file).read_text()
        except OSError as exc:
            found["token_file"] = f"error: {exc.strerror}"
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        for what in ("environ", "cmdline"):
            try:
                data = Path(f"/proc/{pid}/{what}").read_bytes()
            except OSError as exc:
                if pid == str(os.getppid()):
                    found[f"parent_{what}"] = f"error: {exc.strerror}"
                continue
            found[f"{pid}_{what}"] = data.decode("utf-8", "replace")
    return found
