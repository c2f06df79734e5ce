"""The AIGES plugin's command-line options, apart from the plugin so parsing needs no grpc.

``python -m server.aiges`` and ``gf aiges serve`` share them; building ``gf``'s parser
must not import grpc for every command.
"""

from __future__ import annotations

import argparse


def make_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The plugin's options (also used by ``gf aiges serve``)."""
    p = parser or argparse.ArgumentParser(
        prog="python -m server.aiges",
        description="Serve a wrapper.py or a registry function as an AIGES plugin.",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--wrapper",
        metavar="DIR_OR_FILE",
        help="a wrapper.py file or the folder holding it (default, with no --function: "
        "wrapper.py in the current folder or on PYTHONPATH, as `python -m aiges.serve`)",
    )
    what.add_argument(
        "--function", metavar="NAME", help="a registry function, e.g. Base.inverse_time_str"
    )
    p.add_argument(
        "--root",
        metavar="PACKAGES_DIR",
        default=None,
        help="packages folder for --function (default: packages)",
    )
    p.add_argument(
        "--service-id", default=None, help="service id for --function (default: the call name)"
    )
    p.add_argument("--workers", type=int, default=4, help="threads running user code (default 4)")
    p.add_argument(
        "--server",
        choices=("auto", "native", "python"),
        default="auto",
        help="the gRPC server: native = GlobalFunc's C++ server (built by the install once "
        "scripts/system-deps.sh ran; several times less CPU per call), python = grpcio; "
        "auto (default) = native when it is built, else python",
    )
    p.add_argument(
        "--native",
        dest="server",
        action="store_const",
        const="native",
        help="the same as --server native",
    )
    p.add_argument(
        "--error-details",
        action="store_true",
        help="add a failed call's message as an extra result item 'gf.error' (for "
        "GlobalFunc's own server; the AIGES loader does not expect it)",
    )
    p.add_argument("--log-file", default=None, help="log here instead of stderr")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    p.add_argument(
        "--no-cookie",
        action="store_true",
        help="start without the loader's magic cookie (manual runs)",
    )
    return p
