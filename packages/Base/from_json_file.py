"""Read a UTF-8 JSON file and return its value."""

import json
from typing import Any


def from_json_file(file_path: str = None) -> Any:
    """Read the JSON file ``file_path`` and return the decoded value.

    Args:
        file_path: The file to read, e.g. ``"./out/result.json"``.

    Returns:
        The decoded value: dict, list, str, int, float, bool or ``None``.

    Raises:
        ValueError: If ``file_path`` is ``None`` or empty, or the file is not valid JSON
            (``json.JSONDecodeError`` is a ``ValueError``).
        TypeError: If ``file_path`` is not a str.
        FileNotFoundError: If the file does not exist.
    """
    if file_path is None or file_path == "":
        raise ValueError(f"file_path must be a non-empty str, got {file_path!r}")
    if not isinstance(file_path, str):
        raise TypeError(f"file_path must be a str, got {type(file_path).__name__}: {file_path!r}")
    with open(file_path, encoding="utf-8") as handle:
        return json.load(handle)
