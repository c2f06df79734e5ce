"""Create a folder and its parents if they do not exist."""

import os


def create_folder(path: str = None) -> str:
    """Create the folder ``path`` (and any missing parents); do nothing if it exists.

    Args:
        path: The folder to create, e.g. ``"./data/2024"``.

    Returns:
        ``path``, unchanged, so calls can be chained.

    Raises:
        ValueError: If ``path`` is ``None`` or empty.
        TypeError: If ``path`` is not a str.
        FileExistsError: If ``path`` exists but is not a folder.
        PermissionError: If the folder cannot be created.
    """
    if path is None or path == "":
        raise ValueError(f"path must be a non-empty str, got {path!r}")
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, got {type(path).__name__}: {path!r}")
    os.makedirs(path, exist_ok=True)
    return path
