"""GlobalFunc as an AIGES inference engine: the loader's gRPC plugin and its HTTP protocol.

Layout::

    launch.py         the process entry: options, cookie, engine, then one of the two servers
    plugin.py         the Python (grpcio) server: handshake, port, health, shutdown, parent watch
    native.py         the C++ (grpc++) server, ``--native``: the same protocol, far less CPU
    options.py        its command-line options (grpc-free, shared with ``gf aiges serve``)
    servicer.py       aiges.WrapperService over an :class:`~server.aiges.engine.Engine`
    engine.py         what a hosted engine is (init / schema / once / sessions), frames, codes
    wrapper_host.py   Engine for an unchanged user ``wrapper.py`` (class ``Wrapper``)
    function_host.py  Engine for a registry function (``Base.inverse_time_str``)
    schema.py         the ``wrapperSchema`` JSON, from field descriptors or a signature
    compat/           stand-ins for ``aiges.sdk``/``aiges.dto``/... and ``aiges_embed``
    scaffold.py       ``gf aiges create`` / ``gf aiges check``
    ase_http/         the loader's ase HTTP protocol as routes of the tornado server (a package:
                      protocol, services, handlers, wrapper projects, OpenAPI fragment)
    client.py         a loader-emulating gRPC client (tests and benchmarks)
    proto/            aiges.proto + go-plugin protos and their generated modules

AIGES camelCase names (``wrapperInit``...) live only inside this package.
"""

from __future__ import annotations

__all__ = ["main", "serve_plugin"]


def __getattr__(name: str) -> object:
    # Lazy so importing server.aiges.compat does not pull in grpc.
    if name == "main":
        from server.aiges.launch import main

        return main
    if name == "serve_plugin":
        from server.aiges.plugin import serve_plugin

        return serve_plugin
    raise AttributeError(name)
