"""The ase HTTP protocol (what the AIGES loader serves) as tornado routes of the GlobalFunc server.

Routes (``gf serve`` adds them to every server, see :func:`server.serve.serve`)::

    POST /<version>/private/<serviceId>   the loader's default route (any version)
    POST /v1/<serviceId>                  the older route
    GET  /ping                            "pong" (public, like /healthz)

The body is ``{"header", "parameter", "payload"}``: ``parameter.<svc>.<k>`` scalars become
``params[k]`` (strings), objects declare the outputs ``k``; ``payload.<key>`` objects become
data frames (type from the ``text``/``image``/``audio``/``video`` field, base64 string,
status). Success is HTTP 200 ``{"header": {"code": 0, "status": 3, "sid"}, "payload":
{...}}`` with text outputs raw and binary ones base64; failures are ``{"header": {"code",
"sid", "message"}, "payload": null}``. An output the request did not declare answers
10106, as the loader does.

Services, by service id:

- **registry functions**: the service id is the function's call name
  (``Base.inverse_time_str``; the same id ``server.aiges.function_host.FunctionEngine``
  gives the gRPC plugin; dots are URL-safe). Every function the server exposes (same
  registry, same allow-list as ``/call/<name>``) is a service. Params and payloads map to
  keyword arguments with ``FunctionEngine.build_kwargs`` (types from the registered
  signature, a JSON text payload ``kwargs`` spread), and the call goes through the
  server's executor exactly like ``POST /gfgo/`` (isolated by default: timeout, memory
  cap, a crash costs one worker). The JSON result is the text output ``result``, which the
  request must declare (checked before the call runs).
- **wrapper.py services** (:func:`~.wrappers.load_wrappers`): unchanged AIGES wrapper files, served
  under their ``serviceId``. A wrapper keeps models in memory, so it cannot live in a
  per-call worker: in the server's isolated mode (the default) each wrapper runs in its
  own long-lived plugin process (:mod:`server.aiges.process_engine`: call timeout,
  memory cap, replaced when it hangs or dies, so the server survives it); in inline mode
  it is imported into the server process. A wrapper service id shadows a registry
  function of the same name.

Errors: HTTP 500 with ``header.code`` the error's AIGES code (``aiges_code`` of its
:mod:`globalfunc.errors` class, or the engine's ``ret``), except the access errors that
keep their status: unknown service 404, package not exposed 403, token 401, body too big
413. The handlers subclass :class:`server.http.app.BaseHandler`, so token, body limit, CORS,
metrics and the access log are the server's; only the error body takes the ase shape.

Modules, one job each::

    protocol.py   request/response shapes and codes (no HTTP server, no calls)
    services.py   what is served, and call_registry_function: the one place a registry
                  function is called from the ase routes
    handlers.py   the tornado handlers and ase_routes()
    wrappers.py   wrapper projects: find wrapper.py and aiges.toml, load and init engines
    openapi.py    the ase fragment of /openapi.json (written with server.http.openapi's builder)

What it does not do: sessions (``wrapperCreate``/``Write``) over HTTP.
"""

from __future__ import annotations

from server.aiges.ase_http.handlers import AseHandler, AseV1Handler, PingHandler, ase_routes
from server.aiges.ase_http.openapi import ase_openapi
from server.aiges.ase_http.protocol import (
    LEGACY_ROUTE,
    ROUTE,
    UNDECLARED_OUTPUT,
    AseError,
    parse_body,
    render_outcome,
)
from server.aiges.ase_http.services import AseServices, call_registry_function
from server.aiges.ase_http.wrappers import build_engines, load_wrappers

__all__ = [
    "LEGACY_ROUTE",
    "ROUTE",
    "UNDECLARED_OUTPUT",
    "AseError",
    "AseHandler",
    "AseServices",
    "AseV1Handler",
    "PingHandler",
    "ase_openapi",
    "ase_routes",
    "build_engines",
    "call_registry_function",
    "load_wrappers",
    "parse_body",
    "render_outcome",
]
