"""Save any picklable Python object to a ``.pkl`` file."""

import os
import pickle
from typing import Any


def to_pickle(data: Any = None, file_name: str = None, path: str = "./") -> str:
    """Pickle ``data`` to ``<path>/<file_name>.pkl`` and return the full file path.

    The folder must already exist. ``path`` is joined with ``os.path.join``, so
    ``path="./"`` (the default) and ``path="/tmp/"`` give the same result as the
    original ``path + file_name + ".pkl"``, and a path without a trailing ``/`` still
    lands inside that folder. Prints ``data save to pickle:  <full path>`` when done.

    Args:
        data: The object to save; any picklable value, ``None`` included.
        file_name: The file name without the ``.pkl`` extension, e.g. ``"model"``.
        path: The folder to write into; defaults to the current directory.

    Returns:
        The full path of the written file, e.g. ``"./model.pkl"``.

    Raises:
        ValueError: If ``file_name`` is ``None`` or empty.
        TypeError: If ``file_name`` or ``path`` is not a str.
        FileNotFoundError: If the folder ``path`` does not exist.
        pickle.PicklingError: If ``data`` cannot be pickled.
    """
    if file_name is None or file_name == "":
        raise ValueError(f"file_name must be a non-empty str, got {file_name!r}")
    if not isinstance(file_name, str):
        raise TypeError(f"file_name must be a str, got {type(file_name).__name__}: {file_name!r}")
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, got {type(path).__name__}: {path!r}")
    full_path = os.path.join(path, file_name + ".pkl")
    with open(full_path, "wb") as handle:
        pickle.dump(data, handle)
    print("data save to pickle: ", full_path)
    return full_path
