def read_csv_rows(path: str):
    """Read a CSV file into a list of dictionaries, one per row."""
    import csv
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
