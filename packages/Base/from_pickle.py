"""Load a Python object from a ``.pkl`` file written by ``to_pickle``."""

import os
import pickle
from typing import Any


def from_pickle(file_name: str = None, path: str = "./") -> Any:
    """Load and return the object pickled in ``<path>/<file_name>.pkl``.

    Only load files you trust: unpickling can run arbitrary code.

    Args:
        file_name: The file name without the ``.pkl`` extension, e.g. ``"model"``.
        path: The folder holding the file; defaults to the current directory.

    Returns:
        The unpickled object.

    Raises:
        ValueError: If ``file_name`` is ``None`` or empty.
        TypeError: If ``file_name`` or ``path`` is not a str.
        FileNotFoundError: If the file does not exist.
        pickle.UnpicklingError: If the file is not a valid pickle.
    """
    if file_name is None or file_name == "":
        raise ValueError(f"file_name must be a non-empty str, got {file_name!r}")
    if not isinstance(file_name, str):
        raise TypeError(f"file_name must be a str, got {type(file_name).__name__}: {file_name!r}")
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, got {type(path).__name__}: {path!r}")
    full_path = os.path.join(path, file_name + ".pkl")
    with open(full_path, "rb") as handle:
        return pickle.load(handle)
