"""Describe a point: nested and optional values together."""

from typing import Literal


def describe(
    point: tuple[int, int],
    tags: list[str] | None = None,
    unit: Literal["px", "pt"] | None = "px",
) -> dict[str, object]:
    """Return the point as a list, its tags sorted and without repeats, and its unit."""
    return {"point": list(point), "tags": sorted(set(tags or [])), "unit": unit}
