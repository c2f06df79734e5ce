def from_pickle(path: str):
    """Load a Python object back from a pickle file."""
    import pickle
    with open(path, "rb") as fh:
        return pickle.load(fh)
