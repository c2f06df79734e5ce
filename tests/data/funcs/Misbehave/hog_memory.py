"""A function that allocates memory until something stops it, to test the memory cap."""


def hog_memory(step_mb: int = 64, limit_mb: int = 1_000_000) -> int:
    """Keep ``step_mb`` MiB blocks alive until ``limit_mb`` MiB; return the MiB held."""
    blocks = []
    held = 0
    while held < limit_mb:
        blocks.append(bytearray(step_mb * 1024 * 1024))
        held += step_mb
    return held
