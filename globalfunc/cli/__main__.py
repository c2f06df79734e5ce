"""``python -m globalfunc.cli``: the same as ``gf``."""

import sys

from globalfunc.cli.main import main

sys.exit(main())
