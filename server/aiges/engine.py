"""What the plugin hosts: the :class:`Engine` contract and the neutral data it exchanges.

The gRPC servicer speaks protobuf; engines speak :class:`Frame` and :class:`Outcome` and
never see gRPC. Results produced outside a request (session frames pushed by user
threads) go through the ``emit(tag, outcome)`` function the servicer binds. This module
also names the AIGES error codes the plugin answers with, and holds :func:`normalise`, the
one rule both servers (grpcio and the C++ one) apply to every result before it is sent.
It does not know about protobuf or about either server.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ERROR_KEY",
    "EXEC_FAILED",
    "INIT_FAILED",
    "NOT_INITIALIZED",
    "USER_INIT_FAILED",
    "Emit",
    "Engine",
    "Frame",
    "Outcome",
    "normalise",
    "split_error_detail",
    "with_error_detail",
]

INIT_FAILED = 30001
"""The engine could not be loaded: import or construction failed."""
USER_INIT_FAILED = 30002
"""The user's init raised."""
EXEC_FAILED = 30003
"""The user's exec raised, returned nothing, or failed without its own code."""
NOT_INITIALIZED = 30001
"""A call arrived before a successful init (reported with the init code)."""

STATUS_ONCE = 3
TYPE_TEXT = 0

RET_RANGE = range(-(2**31), 2**31)
"""``Response.ret`` is an ``int32``."""
TYPE_RANGE = range(5)
"""AIGES data types: 0 text, 1 audio, 2 image, 3 video, 4 other ("per")."""
STATUS_RANGE = range(4)
"""AIGES data statuses: 0 first, 1 continue, 2 last, 3 once."""


@dataclass(slots=True)
class Frame:
    """One data item of a request or a result (AIGES ``RequestData``/``ResponseData``)."""

    key: str
    data: bytes = b""
    type: int = TYPE_TEXT
    status: int = STATUS_ONCE
    desc: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """A result: ``ret`` 0 and frames on success, else an error code and a message for logs."""

    ret: int = 0
    frames: list[Frame] = field(default_factory=list)
    message: str = ""

    @classmethod
    def failure(cls, ret: int, message: str) -> Outcome:
        return cls(ret=ret or EXEC_FAILED, frames=[], message=message)


ERROR_KEY = "gf.error"
"""Key of the extra item carrying a failed call's message, with ``--error-details`` only.

The AIGES protocol has no field for it; GlobalFunc's own server asks its wrapper
processes for it (the loader never does)."""


def with_error_detail(outcome: Outcome) -> Outcome:
    """``outcome`` with its message as an ``ERROR_KEY`` item when it failed."""
    if not outcome.ret or not outcome.message:
        return outcome
    detail = Frame(key=ERROR_KEY, data=outcome.message.encode("utf-8", "replace"))
    return Outcome(ret=outcome.ret, frames=[*outcome.frames, detail], message=outcome.message)


def split_error_detail(outcome: Outcome) -> Outcome:
    """The inverse of :func:`with_error_detail`: the ``ERROR_KEY`` item back as the message."""
    details = [f for f in outcome.frames if f.key == ERROR_KEY]
    if not details:
        return outcome
    return Outcome(
        ret=outcome.ret,
        frames=[f for f in outcome.frames if f.key != ERROR_KEY],
        message=details[-1].data.decode("utf-8", "replace"),
    )


Emit = Callable[[str, Outcome], None]
"""Where asynchronous results go: ``emit(tag, outcome)``."""


class Engine(Protocol):
    """A hosted inference engine. Methods run on the plugin's user pool and may block.

    ``once`` and ``create``/``write``/``destroy`` return codes instead of raising for
    user-caused failures; an exception escaping them is reported as ``EXEC_FAILED``.
    """

    def bind(self, emit: Emit) -> None:
        """Give the engine the function session results are pushed through."""

    def init(self, config: dict[str, str]) -> int:
        """Load and initialise; 0 on success."""

    def schema(self, service_id: str) -> dict[str, Any]:
        """The ``wrapperSchema`` document (``meta``, ``schemainput``, ``schemaoutput``)."""

    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        """Run one request to completion."""

    def create(self, params: dict[str, str], sid: str, tag: str) -> tuple[str, int]:
        """Open a session; ``(handle, 0)`` or ``("", error_code)``."""

    def write(self, handle: str, frames: list[Frame], sid: str) -> int:
        """Feed a session; its results arrive later through ``emit``."""

    def destroy(self, handle: str) -> int:
        """Close a session."""

    def fini(self) -> int:
        """Release everything at shutdown."""


def _int_in(value: object, allowed: range) -> int | None:
    """``value`` as an int when it is an integer (``bool``, numpy ints) inside ``allowed``."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None
    return number if number in allowed else None


def _as_text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    text = value if isinstance(value, str) else str(value)
    if not text.isascii():  # a lone surrogate cannot travel as a protobuf string
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _plain_text(value: object) -> bool:
    return type(value) is str and (value.isascii() or _as_text(value) == value)


def _normal_frame(index: int, frame: Frame) -> Frame | str:
    """``frame`` with plain values, or why it cannot be sent."""
    what = f"result item {index} ({frame.key!r})"
    type_ = _int_in(frame.type, TYPE_RANGE)
    if type_ is None:
        return f"{what} has type {frame.type!r}; AIGES data types are the integers 0..4"
    status = _int_in(frame.status, STATUS_RANGE)
    if status is None:
        return f"{what} has status {frame.status!r}; AIGES statuses are the integers 0..3"
    data = frame.data
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif isinstance(data, bytearray | memoryview):
        data = bytes(data)
    elif not isinstance(data, bytes):
        return f"{what} has data of type {type(data).__name__}; give bytes or str"
    desc = frame.desc
    if desc is None:
        desc = {}
    elif not isinstance(desc, dict):
        return f"{what} has desc of type {type(desc).__name__}; give a dict of strings"
    elif any(not _plain_text(k) or not _plain_text(v) for k, v in desc.items()):
        desc = {_as_text(k): _as_text(v) for k, v in desc.items()}
    key = frame.key if _plain_text(frame.key) else _as_text(frame.key)
    if (key, data, type_, status, desc) == (
        frame.key,
        frame.data,
        frame.type,
        frame.status,
        frame.desc,
    ):
        return frame
    return Frame(key=key, data=data, type=type_, status=status, desc=desc)


def normalise(outcome: Outcome) -> Outcome:
    """The result as both servers send it, or ``EXEC_FAILED`` when it cannot be sent as is.

    The one rule, shared by the grpcio server and the C++ one: ``ret`` must be an
    ``int32``, every item's ``type`` one of 0..4 and ``status`` one of 0..3, ``data``
    bytes (a ``str`` is sent as UTF-8) and ``desc`` a mapping (keys and values become
    strings). A result breaking it is answered with ``EXEC_FAILED`` (30003) and no items,
    its message naming the offending value; nothing is silently clamped or dropped.
    """
    ret = _int_in(outcome.ret, RET_RANGE)
    if ret is None:
        return Outcome.failure(
            EXEC_FAILED,
            f"the result's error code {outcome.ret!r} is not an int32; "
            "return an error code between -2147483648 and 2147483647",
        )
    frames: list[Frame] = []
    changed = type(outcome.ret) is not int  # a bool becomes a plain int
    for index, frame in enumerate(outcome.frames):
        normal = _normal_frame(index, frame)
        if isinstance(normal, str):
            return Outcome.failure(EXEC_FAILED, normal)
        changed = changed or normal is not frame
        frames.append(normal)
    if not changed:
        return outcome
    return Outcome(ret=ret, frames=frames, message=outcome.message)
