"""``python -m server.aiges``: the AIGES plugin process (see :mod:`server.aiges.plugin`)."""

import sys

from server.aiges.launch import main

if __name__ == "__main__":
    sys.exit(main())
