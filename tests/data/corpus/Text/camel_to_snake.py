def camel_to_snake(name: str):
    """Convert a camelCase identifier to snake_case."""
    import re
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
