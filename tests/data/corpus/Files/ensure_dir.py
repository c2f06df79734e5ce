def ensure_dir(path: str):
    """Create a directory and its parents if missing."""
    import os
    os.makedirs(path, exist_ok=True)
    return path
