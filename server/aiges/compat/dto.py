"""The AIGES data classes user wrapper files exchange with their host.

These are the names a ``wrapper.py`` imports from ``aiges.dto`` (the SDK) or
``aiges_embed`` (the C++ host): request nodes (``DataListNode``/``DataListCls``),
results (``ResponseData``/``Response``), ``SessionCreateResponse`` and the streaming
``callback``. They are plain attribute bags on purpose: wrapper code fills them by
attribute assignment as often as through the setters.

``callback`` does not know about gRPC: the hosting plugin installs a sink with
:func:`set_callback_sink`, and ``callback(response, handle_or_tag, sid)`` hands the
response to it. Without a sink (a wrapper run by hand) the call is logged and dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "DataListCls",
    "DataListNode",
    "Response",
    "ResponseData",
    "SessionCreateResponse",
    "callback",
    "set_callback_sink",
]

log = logging.getLogger(__name__)

CallbackSink = Callable[["Response", str, str], None]

_sink_lock = threading.Lock()
_sink: CallbackSink | None = None


class DataListNode:
    """One request data item: ``key``, ``data`` (bytes), ``len``, ``type``, ``status``, ``desc``."""

    def __init__(
        self,
        key: str = "",
        data: bytes = b"",
        len: int | None = None,
        type: int = 0,
        status: int = 0,
        desc: dict[str, str] | None = None,
    ) -> None:
        self.key = key
        self.data = data
        self.len = len if len is not None else _length(data)
        self.type = type
        self.status = status
        self.desc: dict[str, str] = dict(desc or {})

    def get_data(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return (
            f"DataListNode(key={self.key!r}, len={self.len}, type={self.type}, "
            f"status={self.status})"
        )


class DataListCls:
    """The request data of one call: ``.list`` of :class:`DataListNode`, ``.get(key)``."""

    def __init__(self, items: list[DataListNode] | None = None) -> None:
        self.list: list[DataListNode] = list(items or [])

    def get(self, key: str) -> DataListNode | None:
        """The first node whose key is ``key``, or ``None``."""
        for node in self.list:
            if node.key == key:
                return node
        return None

    def __repr__(self) -> str:
        return f"DataListCls({self.list!r})"


class ResponseData:
    """One result item; ``setData`` sets ``data`` and ``len`` together."""

    def __init__(
        self,
        key: str = "",
        data: bytes | str = b"",
        length: int | None = None,
        type: int = 0,
        status: int = 3,
        desc: dict[str, str] | None = None,
    ) -> None:
        self.key = key
        self.data = data
        self.len = length if length is not None else _length(data)
        self.type = type
        self.status = status
        self.desc: dict[str, str] = dict(desc or {})

    def setData(self, data: bytes | str) -> None:
        self.data = data
        self.len = _length(data)

    def setDataType(self, data_type: int) -> None:
        self.type = data_type

    def __repr__(self) -> str:
        return (
            f"ResponseData(key={self.key!r}, len={self.len}, type={self.type}, "
            f"status={self.status})"
        )


class Response:
    """A call's result: ``.list`` of :class:`ResponseData` and ``.error_code`` (0 = success)."""

    def __init__(self, list: Any = None, error_code: int = 0) -> None:
        self.list: list[ResponseData] = [] if list is None else list
        self.error_code = error_code

    def response_err(self, code: int) -> Response:
        """Mark the response failed with ``code``; returns itself so it can be returned directly."""
        self.error_code = code
        return self

    def __repr__(self) -> str:
        return f"Response(error_code={self.error_code}, list={self.list!r})"


class SessionCreateResponse:
    """What ``wrapperCreate`` returns: the session ``handle`` and an ``error_code``."""

    def __init__(self, handle: str = "", error_code: int = 0) -> None:
        self.handle = handle
        self.error_code = error_code

    def __repr__(self) -> str:
        return f"SessionCreateResponse(handle={self.handle!r}, error_code={self.error_code})"


def set_callback_sink(sink: CallbackSink | None) -> CallbackSink | None:
    """Route :func:`callback` to ``sink`` (``None`` to detach); returns the previous sink."""
    global _sink
    with _sink_lock:
        previous, _sink = _sink, sink
    return previous


def callback(response: Response, handle: Any = "", sid: Any = "", *_: Any) -> int:
    """Push a streaming ``response`` for a session/tag to the host; returns 0, or -1 if unhosted."""
    sink = _sink
    if sink is None:
        log.warning("callback(%r) dropped: no AIGES host is running in this process", handle)
        return -1
    sink(response, "" if handle is None else str(handle), "" if sid is None else str(sid))
    return 0


def _length(data: Any) -> int:
    if isinstance(data, str):
        return len(data.encode("utf-8"))
    try:
        return len(data)
    except TypeError:
        return 0
