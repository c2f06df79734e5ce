"""Flatten a nested dict into one level with joined keys."""

from typing import Any


def flat_dict(data: dict[Any, Any] = None, sep: str = ".") -> dict[str, Any]:
    """Flatten nested dicts so ``{"a": {"b": 1}}`` becomes ``{"a.b": 1}``.

    Keys are joined with ``sep`` and turned into str. Lists and other values are kept as
    they are; an empty nested dict is kept as the value ``{}`` so no key is lost.

    Args:
        data: The dict to flatten; ``None`` is rejected.
        sep: The separator placed between joined keys.

    Returns:
        A new one-level dict; the input is not changed.

    Raises:
        ValueError: If ``data`` is ``None`` or two paths flatten to the same key
            (e.g. ``{"a.b": 1, "a": {"b": 2}}``).
        TypeError: If ``data`` is not a dict or ``sep`` is not a str.
    """
    if data is None:
        raise ValueError("data is None; expected a dict such as {'a': {'b': 1}}")
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict, got {type(data).__name__}: {data!r}")
    if not isinstance(sep, str):
        raise TypeError(f"sep must be a str, got {type(sep).__name__}: {sep!r}")
    result: dict[str, Any] = {}

    def walk(node: dict[Any, Any], prefix: str) -> None:
        for key, value in node.items():
            full_key = f"{prefix}{sep}{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                walk(value, full_key)
                continue
            if full_key in result:
                raise ValueError(f"key {full_key!r} appears twice after flattening with {sep!r}")
            result[full_key] = value

    walk(data, "")
    return result
