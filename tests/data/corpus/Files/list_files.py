def list_files(folder: str, suffix: str = ""):
    """List the files in a folder tree, optionally by extension."""
    import os
    out = []
    for base, _, names in os.walk(folder):
        out += [os.path.join(base, n) for n in names if n.endswith(suffix)]
    return sorted(out)
