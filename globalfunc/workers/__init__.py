"""Workers: HTTP servers that register themselves in Redis, and how clients find them.

A worker is one HTTP server (what ``gf serve`` runs) on a free port of a range
(26000-27000 by default), named after where it runs and what it offers::

    <host>_<version>_<mem>G_<gpu>G_<port>        m7_v101_30G_0G_26000

This package is the part clients and workers share: names
(:mod:`~globalfunc.workers.name`), host probes (:mod:`~globalfunc.workers.host`: memory,
a free port) its entry (:mod:`~globalfunc.workers.entry`) and the Redis directory
(:mod:`~globalfunc.workers.directory`). A worker's
life (serving, registering, the heartbeat thread) is on the server side:
``server.worker``. Nothing here reads settings or imports a server.
"""

from globalfunc.workers.directory import WorkerDirectory
from globalfunc.workers.entry import MAX_INFLIGHT, WorkerCommand, WorkerInfo, check_url
from globalfunc.workers.host import (
    DEFAULT_PORTS,
    machine_memory_mb,
    memory_gb,
    parse_port_range,
    pick_port,
)
from globalfunc.workers.name import WorkerName, parse_worker_name, worker_name

__all__ = [
    "DEFAULT_PORTS",
    "MAX_INFLIGHT",
    "WorkerCommand",
    "WorkerDirectory",
    "WorkerInfo",
    "WorkerName",
    "check_url",
    "machine_memory_mb",
    "memory_gb",
    "parse_port_range",
    "parse_worker_name",
    "pick_port",
    "worker_name",
]
