"""Write JSON-serializable data to a UTF-8 JSON file."""

import json
from typing import Any


def to_json_file(data: Any = None, file_path: str = None, indent: int | None = 2) -> str:
    """Write ``data`` as JSON to ``file_path`` (UTF-8, non-ASCII kept as is).

    The parent folder must already exist; an existing file is overwritten.

    Args:
        data: A JSON-serializable value (dict, list, str, number, bool or ``None``).
        file_path: The file to write, e.g. ``"./out/result.json"``.
        indent: Spaces per indent level; ``None`` writes everything on one line.

    Returns:
        ``file_path``.

    Raises:
        ValueError: If ``file_path`` is ``None`` or empty.
        TypeError: If ``file_path`` is not a str, ``indent`` is not an int or ``None``,
            or ``data`` is not JSON-serializable.
        FileNotFoundError: If the parent folder does not exist.
    """
    if file_path is None or file_path == "":
        raise ValueError(f"file_path must be a non-empty str, got {file_path!r}")
    if not isinstance(file_path, str):
        raise TypeError(f"file_path must be a str, got {type(file_path).__name__}: {file_path!r}")
    if indent is not None and (isinstance(indent, bool) or not isinstance(indent, int)):
        raise TypeError(f"indent must be an int or None, got {type(indent).__name__}: {indent!r}")
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    with open(file_path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return file_path
