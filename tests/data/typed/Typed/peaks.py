"""The largest value of each group."""


def peaks(groups: dict[str, list[int]]) -> dict[str, int | None]:
    """Return each group's largest value (None for an empty group)."""
    return {name: max(values) if values else None for name, values in groups.items()}
