def tail_lines(path: str, count: int = 10):
    """The last lines of a text file, like the tail command."""
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()[-count:]
