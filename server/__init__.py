"""GlobalFunc servers: HTTP (tornado), the AIGES gRPC plugin, and workers."""
