"""Functions the scale-out tests call (workers, drain, Ray map)."""
