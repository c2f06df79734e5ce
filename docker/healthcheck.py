"""Container healthcheck: GET /healthz on the first port of GF_WORKER_PORTS that answers.

One worker runs per container, so it holds the first free port of its range: the range's
first port unless something else in the container took it. Exit 0 when healthy.
"""

import os
import sys
import urllib.request

first, _, last = os.environ.get("GF_WORKER_PORTS", "26000-27000").partition("-")
for port in range(int(first), min(int(last or first), int(first) + 4) + 1):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            sys.exit(0 if answer.status == 200 else 1)
    except OSError:
        continue
sys.exit(1)
