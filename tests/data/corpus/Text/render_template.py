def render_template(template: str, values: dict):
    """Fill {placeholders} in a template string with values."""
    return template.format(**values)
