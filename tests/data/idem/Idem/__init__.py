"""Functions the idempotency attack tests call (runs logged, a large result, an echo)."""
