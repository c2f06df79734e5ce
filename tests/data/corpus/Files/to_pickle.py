def to_pickle(obj, path: str):
    """Save any Python object to a pickle file on disk."""
    import pickle
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
