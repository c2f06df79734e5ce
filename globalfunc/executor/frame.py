"""The wire format between the isolated pool and its worker processes.

Every message is one frame: a 4-byte big-endian length, then that many bytes. A request
is an orjson object (name, version, args, kwargs, tagged); an answer starts with one
status byte — ``_OK`` (the result's JSON follows), ``_ERR`` (an error dict follows),
``_ERR_EXITING`` (an error, and the worker exits after sending it) — and a worker that has
started says ``_READY`` once, before its first answer.

:func:`request_frame` builds a request's body and :func:`answer_of` reads an answer (the
result's JSON bytes, or the error it carries, raised).

What it does not do: own a pipe or a process. The blocking helpers here serve the worker's
side; the parent reads its end without blocking (:mod:`globalfunc.executor.handle`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from globalfunc import jsoncodec
from globalfunc.errors import GlobalFuncError, InvalidRequest, WorkerCrashed, error_from_dict

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


def request_frame(
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    tagged: bool,
    version: str | None,
    encoded: bool,
) -> bytes:
    """A request's body; ``encoded``: the arguments are JSON values with type tags already."""
    try:
        body = {
            "name": name,
            "version": version,
            "args": list(args) if encoded else jsoncodec.encode(list(args)),
            "kwargs": dict(kwargs) if encoded else jsoncodec.encode(dict(kwargs)),
            "tagged": tagged,
        }
    except GlobalFuncError as exc:
        raise InvalidRequest(f"arguments of {name} cannot be sent to a worker: {exc}") from exc
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer past 64 bits: the standard library writes it exactly
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def answer_of(name: str, frame: bytes) -> bytes:
    """The result's JSON bytes from an answer frame, or the error it carries, raised."""
    status, body = frame[:1], frame[1:]
    if status == _OK:
        return body
    try:
        data = orjson.loads(body)
        err = error_from_dict(data.get("error", {}), 500)
    except (orjson.JSONDecodeError, AttributeError):
        err = WorkerCrashed(f"worker sent an unreadable answer for {name}")
    if status == _ERR_EXITING and not isinstance(err, WorkerCrashed):
        err = WorkerCrashed(str(err), function=name)
    raise err
