"""What the plugin hosts: the :class:`Engine` contract and the neutral data it exchanges.

The gRPC servicer speaks protobuf; engines speak :class:`Frame` and :class:`Outcome` and
never see gRPC. Results produced outside a request (session frames pushed by user
threads) go through the ``emit(tag, outcome)`` function the servicer binds. This module
also names the AIGES error codes the plugin answers with.
"""

from __future__ import annotations

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
