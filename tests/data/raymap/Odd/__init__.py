"""Functions that misbehave on one chosen item: the Ray map's fault tests call them."""
