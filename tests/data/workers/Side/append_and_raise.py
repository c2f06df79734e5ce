"""A function with a side effect that then fails: it must run once, never be resent."""


def append_and_raise(path, text="ran"):
    """Append ``text`` and a newline to the file ``path``, then raise ``ValueError``."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
    raise ValueError(f"appended {text!r} to {path} and failed on purpose")
