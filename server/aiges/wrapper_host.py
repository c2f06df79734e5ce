"""Host an unchanged AIGES ``wrapper.py``: import it as module ``wrapper``, run class ``Wrapper``.

The file is imported at init (so a broken file answers ``wrapperInit`` with 30001, as
the loader expects), with the ``aiges``/``aiges_embed`` stand-ins installed first when
the real packages are absent. Wrapper methods are called the way the reference plugin
calls them, filtered to the arguments each signature accepts (SDK versions differ).
Results pushed by ``callback(response, handle_or_tag_or_sid, sid)`` are routed back to
the tag of the ``wrapperCreate`` that opened the session.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.aiges.compat import dto
from server.aiges.engine import (
    EXEC_FAILED,
    INIT_FAILED,
    NOT_INITIALIZED,
    USER_INIT_FAILED,
    Emit,
    Frame,
    Outcome,
)
from server.aiges.schema import wrapper_schema
from server.aiges.wrapper_import import (
    load_wrapper_module,
    step_aside,
)

__all__ = [
    "WrapperEngine",
    "call_flexibly",
    "data_list",
    "load_wrapper_module",
    "outcome_from_response",
    "step_aside",
]

log = logging.getLogger(__name__)

RECENT_SESSIONS = 256
"""How many ended sessions still route late frames to their tag."""


_Plan = tuple[int, frozenset[str] | None]
"""How to call: how many leading positional args to pass, which keyword names (``None``: all)."""

_plans: dict[tuple[Any, ...], _Plan] = {}
_PLAN_CACHE_LIMIT = 4096


def _call_plan(method: Callable[..., Any], nargs: int, kwnames: tuple[str, ...]) -> _Plan:
    bound = getattr(method, "__self__", None) is not None
    key = (getattr(method, "__func__", method), bound, nargs, kwnames)
    try:
        return _plans[key]
    except (KeyError, TypeError):
        pass
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        plan: _Plan = (nargs, None)
    else:
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if not any(p.kind is p.VAR_POSITIONAL for p in params):
            nargs = min(nargs, len(positional))
        taken = {p.name for p in positional[:nargs]}
        if any(p.kind is p.VAR_KEYWORD for p in params):
            names = {k for k in kwnames if k not in taken}
        else:
            accepted = {
                p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            }
            names = {k for k in kwnames if k in accepted and k not in taken}
        plan = (nargs, frozenset(names))
    try:
        if len(_plans) >= _PLAN_CACHE_LIMIT:
            _plans.clear()
        _plans[key] = plan
    except TypeError:  # an unhashable callable: no caching
        pass
    return plan


def call_flexibly(method: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``method`` with the leading ``args`` and the ``kwargs`` its signature accepts.

    The signature is read once per function and call shape (wrapper methods run per request).
    """
    nargs, names = _call_plan(method, len(args), tuple(kwargs))
    if names is None:
        return method(*args, **kwargs)
    return method(*args[:nargs], **{k: v for k, v in kwargs.items() if k in names})


def _to_bytes(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    try:  # aiges_embed.Buffer (request data handed back), numpy arrays: the buffer protocol
        return bytes(memoryview(data))
    except TypeError:
        return str(data).encode("utf-8")


def _frame_from(item: Any) -> Frame:
    """One result item (a ``ResponseData``-like object or a dict) as a :class:`Frame`.

    A ``key`` given as bytes is decoded as UTF-8 (bad bytes become U+FFFD), like ``desc``.
    ``type``/``status``/``desc`` are passed on as given; :func:`~server.aiges.engine.normalise`
    checks them (an out-of-range value is answered with 30003 by both servers).
    """
    get = (
        item.get
        if isinstance(item, dict)
        else lambda name, default=None: getattr(item, name, default)
    )
    type_ = get("type", 0)
    status = get("status", 3)
    key = get("key", "") or ""
    return Frame(
        # bytes are UTF-8 text (as desc values are), not their repr "b'...'"
        key=bytes(key).decode("utf-8", "replace")
        if isinstance(key, bytes | bytearray | memoryview)
        else str(key),
        data=_to_bytes(get("data", b"")),
        type=0 if type_ is None else type_,
        status=3 if status is None else status,
        desc=get("desc", None) or {},
    )


def outcome_from_response(resp: Any, what: str = "wrapperOnceExec") -> Outcome:
    """Turn whatever the user code returned into an :class:`Outcome` (never raises)."""
    if resp is None:
        return Outcome.failure(EXEC_FAILED, f"{what} returned None")
    if isinstance(resp, (bool, int)):
        code = int(resp)
        return Outcome.failure(code or EXEC_FAILED, f"{what} returned the code {code}, no data")
    code = getattr(resp, "error_code", 0) or 0
    items = getattr(resp, "list", None)
    if items is None and isinstance(resp, list):
        items = resp
    try:
        frames = [_frame_from(item) for item in items or []]
    except Exception as exc:  # a list or an item whose attributes raise
        return Outcome.failure(
            EXEC_FAILED, f"{what} returned an unreadable result: {type(exc).__name__}: {exc}"
        )
    if code:
        return Outcome(ret=code, frames=frames, message=f"{what} set error_code {code!r}")
    if not frames:
        return Outcome.failure(EXEC_FAILED, f"{what} returned an empty list")
    return Outcome(ret=0, frames=frames)


def data_list(frames: list[Frame]) -> Any:
    embed = sys.modules.get("aiges_embed", dto)  # the C++ classes when they are built
    node_cls: Any = getattr(embed, "DataListNode", dto.DataListNode)
    list_cls: Any = getattr(embed, "DataListCls", dto.DataListCls)
    real = sys.modules.get("aiges.dto")
    if real is not None and real is not dto:  # a real SDK: hand its own classes to its users
        node_cls = getattr(real, "DataListNode", node_cls)
        list_cls = getattr(real, "DataListCls", list_cls)
    ours = {id(dto.DataListNode), id(getattr(embed, "DataListNode", dto.DataListNode))}
    if id(node_cls) in ours:
        # Ours (C++ or Python): one constructor call per node.
        return list_cls(
            [node_cls(f.key, f.data, len(f.data), f.type, f.status, dict(f.desc)) for f in frames]
        )
    out = list_cls()
    for f in frames:
        node = node_cls()
        node.key, node.data, node.len, node.type, node.status = (
            f.key,
            f.data,
            len(f.data),
            f.type,
            f.status,
        )
        with contextlib.suppress(AttributeError):
            node.desc = dict(f.desc)
        out.list.append(node)
    return out


class WrapperEngine:
    """Engine for a user ``wrapper.py``; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        module_name: str = "wrapper",
        class_name: str = "Wrapper",
        *,
        isolate_imports: bool = False,
    ) -> None:
        """``isolate_imports``: see :func:`load_wrapper_module` (the plugin process sets it)."""
        self.path = Path(path)
        self.isolate_imports = isolate_imports
        self.module_name = module_name
        self.class_name = class_name
        self.instance: Any = None
        self.load_error = ""
        self._emit: Emit | None = None
        self._lock = threading.Lock()
        # Live sessions only: entries go when the session is destroyed (or its handle is
        # handed to a new session), so they never outgrow the sessions open at once.
        self._tag_by_handle: dict[str, str] = {}
        self._tag_by_sid: dict[str, str] = {}
        self._sid_by_tag: dict[str, str] = {}
        self._tags: set[str] = set()
        # C mode: the loader's usrTag (what the wrapper sees) -> the newest live session's
        # key ("<usrTag>#<n>"), for a wrapper that pushes results by its usrTag.
        self._key_by_usr_tag: dict[str, str] = {}
        self._usr_tag_by_key: dict[str, str] = {}
        # Ended sessions, newest last, so frames still in flight after destroy reach the
        # right tag; at most RECENT_SESSIONS keys.
        self._recent: OrderedDict[str, str] = OrderedDict()

    # -- wiring -------------------------------------------------------------------------
    def bind(self, emit: Emit) -> None:
        self._emit = emit
        dto.set_callback_sink(self._on_callback)
        real_callback = sys.modules.get("aiges.callback")
        if real_callback is not None and real_callback is not dto:
            log.warning(
                "a real aiges SDK is installed: callback() from aiges.callback goes to the SDK, "
                "use aiges_embed or uninstall aiges to route session results through GlobalFunc"
            )

    def _on_callback(self, resp: dto.Response, key: str, sid: str) -> None:
        with self._lock:
            tag = (
                self._tag_by_handle.get(key)
                or (key if key in self._tags else None)
                or self._key_by_usr_tag.get(key)
                or self._tag_by_sid.get(key)
                or self._tag_by_sid.get(sid)
                or self._recent.get(key)
                or self._recent.get(sid)
                or key
            )
        outcome = outcome_from_response(resp, "callback")
        if outcome.ret == EXEC_FAILED and not outcome.frames and not getattr(resp, "error_code", 0):
            outcome = Outcome(ret=0, frames=[])  # an empty frame push is not an error
        if self._emit is None:
            log.warning("session result for %r dropped: engine not bound", tag)
            return
        self._emit(tag, outcome)

    # -- lifecycle ----------------------------------------------------------------------
    def init(self, config: dict[str, str]) -> int:
        try:
            module = load_wrapper_module(self.path, self.module_name, isolate=self.isolate_imports)
            cls = getattr(module, self.class_name)
            self.instance = cls()
        except Exception as exc:
            log.exception("cannot load %s.%s from %s", self.module_name, self.class_name, self.path)
            self.load_error = f"{type(exc).__name__}: {exc}"
            return INIT_FAILED
        try:
            ret = call_flexibly(self.instance.wrapperInit, [dict(config)], {})
        except Exception as exc:
            log.exception("wrapperInit raised")
            self.load_error = f"wrapperInit raised {type(exc).__name__}: {exc}"
            return USER_INIT_FAILED
        code = int(ret or 0) if isinstance(ret, int | bool | type(None)) else USER_INIT_FAILED
        if code:
            log.error("wrapperInit returned %s", ret)
        return code

    def schema(self, service_id: str) -> dict[str, Any]:
        target = self.instance if self.instance is not None else self._wrapper_class()
        return wrapper_schema(target, service_id)

    def _wrapper_class(self) -> Any:
        module = sys.modules.get(self.module_name) or load_wrapper_module(
            self.path, self.module_name, isolate=self.isolate_imports
        )
        return getattr(module, self.class_name)

    def fini(self) -> int:
        if self.instance is None:
            return 0
        try:
            return int(call_flexibly(self.instance.wrapperFini, [], {}) or 0)
        except Exception:
            log.exception("wrapperFini raised")
            return EXEC_FAILED
        finally:
            dto.set_callback_sink(None)

    # -- calls --------------------------------------------------------------------------
    def once(self, params: dict[str, str], frames: list[Frame], tag: str) -> Outcome:
        if self.instance is None:
            return Outcome.failure(
                NOT_INITIALIZED, "wrapperOnceExec before a successful wrapperInit"
            )
        try:
            resp = call_flexibly(
                self.instance.wrapperOnceExec, [dict(params), data_list(frames)], {"usrTag": tag}
            )
        except Exception as exc:
            log.exception("wrapperOnceExec raised (tag %s)", tag)
            return Outcome.failure(
                EXEC_FAILED, f"wrapperOnceExec raised {type(exc).__name__}: {exc}"
            )
        return outcome_from_response(resp)

    takes_usr_tag = True  # create() accepts usr_tag (chost.Host passes the loader's usrTag)

    def create(
        self, params: dict[str, str], sid: str, tag: str, usr_tag: str | None = None
    ) -> tuple[str, int]:
        """Open a session whose results are emitted under ``tag``.

        ``usr_tag``: what the wrapper is shown as its usrTag when that differs from
        ``tag`` (C mode: ``tag`` is the session's own key ``"<usrTag>#<n>"``, the wrapper
        sees the loader's usrTag; a result it pushes by that usrTag goes to the newest
        live session that has it).
        """
        if self.instance is None:
            return "", NOT_INITIALIZED
        shown = tag if usr_tag is None else usr_tag
        with self._lock:
            self._tags.add(tag)
            if sid:
                self._tag_by_sid[sid] = tag
                self._sid_by_tag[tag] = sid
            if shown != tag:
                self._key_by_usr_tag[shown] = tag
                self._usr_tag_by_key[tag] = shown
        try:
            resp = call_flexibly(
                self.instance.wrapperCreate,
                [dict(params)],
                {"sid": sid, "userTag": shown, "usrTag": shown},
            )
        except Exception:
            log.exception("wrapperCreate raised (tag %s)", tag)
            self._forget(tag, sid)
            return "", EXEC_FAILED
        if resp is None:
            self._forget(tag, sid)
            return "", EXEC_FAILED
        if isinstance(resp, str):
            handle, code = resp, 0
        else:
            handle = str(getattr(resp, "handle", "") or "")
            code = int(getattr(resp, "error_code", 0) or 0)
        if code:
            self._forget(tag, sid)
            return "", code
        handle = handle or tag
        with self._lock:
            previous = self._tag_by_handle.get(handle)
            if previous is not None and previous != tag:  # the handle's last session ended
                self._retire_locked(handle)
            self._tag_by_handle[handle] = tag
            self._recent.pop(handle, None)
        return handle, 0

    def _forget(self, tag: str, sid: str) -> None:
        """A create that failed: drop what it registered."""
        with self._lock:
            self._tags.discard(tag)
            self._sid_by_tag.pop(tag, None)
            if sid and self._tag_by_sid.get(sid) == tag:
                del self._tag_by_sid[sid]
            self._drop_usr_tag_locked(tag)

    def _drop_usr_tag_locked(self, tag: str) -> None:
        shown = self._usr_tag_by_key.pop(tag, None)
        if shown is not None and self._key_by_usr_tag.get(shown) == tag:
            del self._key_by_usr_tag[shown]

    def _retire_locked(self, handle: str) -> None:
        """Move a session from the live maps to the bounded recent ones (lock held)."""
        tag = self._tag_by_handle.pop(handle, None)
        if tag is None:
            return
        self._tags.discard(tag)
        shown = self._usr_tag_by_key.get(tag)
        self._drop_usr_tag_locked(tag)
        sid = self._sid_by_tag.pop(tag, "")
        if sid and self._tag_by_sid.get(sid) == tag:
            del self._tag_by_sid[sid]
        for key in (handle, sid, shown):
            if key:
                self._recent[key] = tag
                self._recent.move_to_end(key)
        while len(self._recent) > RECENT_SESSIONS:
            self._recent.popitem(last=False)

    def session_counts(self) -> dict[str, int]:
        """Sizes of the session bookkeeping (live maps and the bounded recent one)."""
        with self._lock:
            return {
                "tags": len(self._tags),
                "by_handle": len(self._tag_by_handle),
                "by_sid": len(self._tag_by_sid),
                "sid_by_tag": len(self._sid_by_tag),
                "by_usr_tag": len(self._key_by_usr_tag),
                "recent": len(self._recent),
            }

    def write(self, handle: str, frames: list[Frame], sid: str) -> int:
        if self.instance is None:
            return NOT_INITIALIZED
        try:
            ret = call_flexibly(self.instance.wrapperWrite, [handle, data_list(frames), sid], {})
        except Exception:
            log.exception("wrapperWrite raised (handle %s)", handle)
            return EXEC_FAILED
        return int(ret or 0) if isinstance(ret, int | bool | type(None)) else 0

    def destroy(self, handle: str) -> int:
        if self.instance is None:
            return NOT_INITIALIZED
        try:
            ret = call_flexibly(self.instance.wrapperDestroy, [handle], {})
        except Exception:
            log.exception("wrapperDestroy raised (handle %s)", handle)
            return EXEC_FAILED
        # The session has ended: its routes move to the bounded recent map, so frames
        # still in flight after destroy reach the right request.
        with self._lock:
            self._retire_locked(handle)
        return int(ret or 0) if isinstance(ret, int | bool | type(None)) else 0
