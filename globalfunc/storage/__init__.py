"""Storage backends behind one small contract; ``open_storage(url)`` picks one by URL."""

from globalfunc.storage.base import Storage, open_storage, redact_url

__all__ = ["Storage", "open_storage", "redact_url"]
