"""GFClient: call registered functions on a GlobalFunc HTTP server as if they were local.

::

    from globalfunc.client import GFClient

    gf = GFClient("http://127.0.0.1:8000", token="...")
    gf.call("Base.inverse_time_str", time_str="2024-02-15 11:11:11", bias_hours=-8)
    gf.call_args("Base.safe_div", 1, 2)
    gf.functions(); gf.search("time")

Arguments and results go through :mod:`globalfunc.jsoncodec`, so datetime, date, Decimal,
bytes, sets, tuples, Path and numpy arrays arrive as themselves. A failed call raises the
same :mod:`globalfunc.errors` class a local call would, rebuilt from the server's JSON
error body, so one ``except`` clause serves both: ``BadArguments`` is a ``TypeError``, and
a function that raised a built-in exception raises ``ExecutionError(ValueError)`` (both
an ``ExecutionError`` and a ``ValueError``). A server that cannot be reached raises
:class:`~globalfunc.errors.ServerUnavailable`.

The retry rule: a request that never reached a server (refused, connect timeout, a
keep-alive connection the server had closed) is sent again, on a fresh connection or
to the next worker, calls included; a call whose connection failed after it was sent
is never sent again (it may have run); GETs are retried on any connection failure and
on 502/503. Transport: urllib3 connection pools (keep-alive, thread-safe).

Workers: ``GFClient.from_workers(redis_url)`` calls through the live workers that
``gf worker`` registered in Redis (:mod:`globalfunc.workers`), round robin (``prefer``
puts some first), and refreshes their list every ``refresh`` seconds and whenever every
worker failed. A worker that answered 503 or could not be reached is passed over; any
other answer is final, errors included. When no worker takes the request,
:class:`~globalfunc.errors.ServerUnavailable` names every worker tried.

Modules: :mod:`~globalfunc.client.api` (GFClient and the retry rule),
:mod:`~globalfunc.client.routing` (which server), :mod:`~globalfunc.client.transport`
(sending). Nothing here reads settings or imports a server.
"""

from globalfunc.client.api import GFClient
from globalfunc.client.routing import Prefer

__all__ = ["GFClient", "Prefer"]
