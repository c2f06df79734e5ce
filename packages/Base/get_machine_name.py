"""Return a given machine name, or this machine's host name."""

import socket


def get_machine_name(given_name: str | None = None) -> str:
    """Return ``given_name`` if it is set, else this machine's host name.

    The host name comes from ``socket.gethostname()``; if that fails or is empty, from the
    first line of ``/etc/hostname``; if that also fails, the placeholder ``"xx"``.

    Args:
        given_name: A name to use instead of the host name; ``None`` looks the name up.

    Returns:
        The machine name.

    Raises:
        TypeError: If ``given_name`` is neither ``None`` nor a str.
    """
    if given_name is not None:
        if not isinstance(given_name, str):
            raise TypeError(
                f"given_name must be a str or None, got {type(given_name).__name__}: {given_name!r}"
            )
        return given_name
    try:
        name = socket.gethostname().strip()
    except OSError:
        name = ""
    if name:
        return name
    try:
        with open("/etc/hostname", encoding="utf-8") as handle:
            name = handle.readline().strip()
    except OSError:
        name = ""
    return name or "xx"
