"""The wire format between the isolated pool and its worker processes.

Every message is one frame: a 4-byte big-endian length, then that many bytes. A request
is an orjson object (name, version, args, kwargs, tagged); an answer starts with one
status byte — ``_OK`` (the result's JSON follows), ``_ERR`` (an error dict follows),
``_ERR_EXITING`` (an error, and the worker exits after sending it) — and a worker that has
started says ``_READY`` once, before its first answer.

What it does not do: own a pipe or a process. The blocking helpers here serve the worker's
side; the pool reads its end without blocking (:mod:`globalfunc.executor.isolated`).
"""

from __future__ import annotations

import struct
from typing import Any

_HEADER = struct.Struct(">I")
_OK, _ERR, _ERR_EXITING, _READY = b"0", b"1", b"2", b"R"


def _read_exact(stream: Any, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = stream.read(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _write_frame(stream: Any, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
