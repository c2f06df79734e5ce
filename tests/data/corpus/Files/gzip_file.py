def gzip_file(path: str):
    """Compress a file with gzip next to the original."""
    import gzip, shutil
    with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path + ".gz"
