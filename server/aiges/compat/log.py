"""``aiges.utils.log``: the ``log`` logger and ``getFileLogger()`` wrapper files use.

Unlike the SDK this never writes to a fixed directory: both return loggers under
``wrapper`` that propagate to whatever handlers the hosting process configured
(stderr or the plugin's ``--log-file``).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("wrapper")


def getLogger(fmt: Any = None, level: Any = None, name: str = "wrapper") -> logging.Logger:
    """A logger named ``name``; ``fmt``/``level`` are accepted for SDK compatibility."""
    logger = logging.getLogger(name)
    if isinstance(level, int | str) and level:
        logger.setLevel(level)
    return logger


def getFileLogger(fmt: Any = None, level: Any = None, name: str = "wrapper") -> logging.Logger:
    """Same as :func:`getLogger`: file output is the host's choice, not the wrapper's."""
    return getLogger(fmt, level, name)
