"""Results JSON cannot carry, by ``kind``: the Ray map must put an error in their place."""


class Thing:
    """A class only this module defines (the map's driver cannot import it)."""


def weird(kind: str = "obj") -> object:
    """``{1, 2}`` for "set", NaN for "nan", a :class:`Thing` for "obj", else ``kind``."""
    if kind == "set":
        return {1, 2}
    if kind == "nan":
        return float("nan")
    if kind == "obj":
        return Thing()
    return kind
