"""Every error a GlobalFunc user can cause, in one tree.

Core code raises these; only the edges (the ``gf`` CLI, the HTTP handlers, the gRPC
servicer) catch them and turn them into output. Each class carries the HTTP status and
the AIGES error code the edges use, so a handler never needs a mapping table::

    GlobalFuncError                     500  base of everything below
    +-- InvalidName                     400  a call name, scan key, storage key or branch is malformed
    +-- InvalidRequest                  400  a request body or argument is malformed
    |   +-- BadArguments                400  kwargs do not fit the function's signature (also a TypeError)
    |   +-- RequestTooLarge             413  body over the configured limit
    |   +-- NestingTooDeep              400  a JSON body nested deeper than the server allows
    |   +-- BadIdempotencyKey           400  an Idempotency-Key that is not 1-200 visible ASCII characters
    +-- IdempotencyKeyReused            422  a key already used for another call (function or arguments)
    +-- ResultNotKept                   410  a keyed call ran, but its result was too large to keep for a resend
    +-- ClientGone                      499  the caller left while its keyed call waited on another request
    +-- Unauthorized                    401  missing or wrong bearer token
    +-- Forbidden                       403  the package is not on the allow-list
    +-- NotFound                        404
    |   +-- FunctionNotFound            404  no such registered function / package / version
    |   +-- PackageNotFound             404
    +-- ScanError                       422  a function file cannot be registered (syntax, name, size, encoding)
    +-- WorkspaceError                  409  the git workspace cannot do what was asked (not a repo, ...)
    +-- IntegrityError                  500  a stored record's content does not match its hash
    +-- PathEscape                      400  a write would land outside its target folder
    +-- StorageError                    500  a storage backend failed
    |   +-- StorageUnavailable          503  the backend cannot be reached
    +-- ExecutionError                  500  the called function raised (its exception is ``__cause__``)
    |   +-- ExecutionError(ValueError)  500  (client side) a remote built-in exception, see below
    |   +-- ExecutionTimeout            504  the call ran past its time limit
    |   +-- WorkerCrashed               500  the worker process died (crash, ``os._exit``, memory cap)
    |   +-- Interrupted                 502  the server stopped while the call ran; it may have run in part
    |   +-- ResultNotSerializable       500  the result cannot be turned into JSON
    |       +-- ResultNotFinite         500  the result holds NaN or Infinity (JSON has neither)
    +-- ConfigError                     500  a setting is invalid
    +-- ServerUnavailable               503  (client side) the server cannot be reached or gave no answer

An error message says what was wrong, with the offending value, and what to do next.

One ``except`` clause works for a local call and a remote one: :class:`BadArguments` is
also a :class:`TypeError` (what calling a function with wrong arguments raises locally),
and when a remote function raised a built-in exception (``ValueError``, ``KeyError``,
``ZeroDivisionError``, ...; the server's error body names it in ``details.exc_type``)
:func:`error_from_dict` raises an instance of a class that is both
:class:`ExecutionError` and that built-in type, made once per type
(:func:`remote_error_class`), as Ray does with task errors. Exceptions of other types
(a user's own classes) stay plain :class:`ExecutionError`: the client cannot import them.
"""

from __future__ import annotations

import builtins
import threading
from typing import Any, ClassVar

__all__ = [
    "BadArguments",
    "BadIdempotencyKey",
    "ClientGone",
    "ConfigError",
    "ExecutionError",
    "ExecutionTimeout",
    "Forbidden",
    "FunctionNotFound",
    "GlobalFuncError",
    "IdempotencyKeyReused",
    "IntegrityError",
    "Interrupted",
    "InvalidName",
    "InvalidRequest",
    "NestingTooDeep",
    "NotFound",
    "Overloaded",
    "PackageNotFound",
    "PathEscape",
    "RequestTooLarge",
    "ResultNotFinite",
    "ResultNotKept",
    "ResultNotSerializable",
    "ScanError",
    "ServerUnavailable",
    "StorageError",
    "StorageUnavailable",
    "Unauthorized",
    "WorkerCrashed",
    "WorkspaceError",
    "error_from_dict",
    "remote_error_class",
]


class GlobalFuncError(Exception):
    """Root of every GlobalFunc error; carries its HTTP status and AIGES code."""

    http_status: ClassVar[int] = 500
    aiges_code: ClassVar[int] = 10909

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as the JSON body the HTTP edge returns."""
        name = getattr(type(self), "_wire_name", type(self).__name__)
        body: dict[str, Any] = {"error": name, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidName(GlobalFuncError):
    """A call name, scan key, storage key or branch name is malformed."""

    http_status = 400
    aiges_code = 10106


class InvalidRequest(GlobalFuncError):
    """A request body or an argument is malformed."""

    http_status = 400
    aiges_code = 10106


class BadArguments(InvalidRequest, TypeError):
    """The arguments do not fit the function's signature or its annotations (422).

    Also a :class:`TypeError`, so ``except TypeError`` catches a bad call whether it ran
    here (Python's own ``TypeError``) or on a server (this class, rebuilt by the client).
    """

    http_status = 422


class RequestTooLarge(InvalidRequest):
    """The request body is over the configured limit."""

    http_status = 413


class NestingTooDeep(InvalidRequest):
    """A JSON body is nested deeper than the server accepts (``GF_MAX_JSON_DEPTH``)."""


class BadIdempotencyKey(InvalidRequest):
    """An ``Idempotency-Key`` that is not 1-200 visible ASCII characters (checked by the
    client before sending, and by the server)."""


class IdempotencyKeyReused(GlobalFuncError):
    """An idempotency key already used (by the same caller) for another call: another
    function or other arguments. The other call's result is never returned for it."""

    http_status = 422
    aiges_code = 10106


class ResultNotKept(GlobalFuncError):
    """A keyed call ran, but its result was larger than the worker keeps for resends
    (``GF_IDEMPOTENCY_MAX_RESULT_KB``): a resend of its key gets this, not a second run."""

    http_status = 410


class ClientGone(GlobalFuncError):
    """The caller disconnected while its keyed call waited on another request running the
    same key: it stopped waiting, and nothing ran for it. Nobody reads this answer; it is
    what the access log counts (499, nginx's "client closed request")."""

    http_status = 499


class Unauthorized(GlobalFuncError):
    """The bearer token is missing or wrong."""

    http_status = 401
    aiges_code = 10105


class Forbidden(GlobalFuncError):
    """The function's package is not exposed by this server."""

    http_status = 403
    aiges_code = 10105


class NotFound(GlobalFuncError):
    """Something asked for does not exist."""

    http_status = 404
    aiges_code = 10107


class FunctionNotFound(NotFound):
    """No registered function (or version of it) has that name."""


class PackageNotFound(NotFound):
    """No package has that name."""


class ScanError(GlobalFuncError):
    """A function file cannot be registered: syntax error, wrong name, too big, not UTF-8."""

    http_status = 422
    aiges_code = 10106


class WorkspaceError(GlobalFuncError):
    """The git workspace cannot do what was asked (not a repo, nothing to commit, push failed)."""

    http_status = 409


class IntegrityError(GlobalFuncError):
    """A stored record's content does not match its recorded hash."""


class PathEscape(GlobalFuncError):
    """A write would land outside its target folder."""

    http_status = 400
    aiges_code = 10106


class StorageError(GlobalFuncError):
    """A storage backend failed."""


class StorageUnavailable(StorageError):
    """The storage backend cannot be reached."""

    http_status = 503


class ExecutionError(GlobalFuncError):
    """The called function raised; the original exception is ``__cause__`` when local."""

    aiges_code = 30003


class ExecutionTimeout(ExecutionError):
    """The call ran past its time limit."""

    http_status = 504
    aiges_code = 10102


class WorkerCrashed(ExecutionError):
    """The worker process running the call died."""

    aiges_code = 10910


class Interrupted(ExecutionError):
    """The server stopped while the call ran in one of its worker processes: it may have
    run in part. Not a 503 (a 503 means nothing ran): a client resends it only when told
    to (``retries``)."""

    http_status = 502
    aiges_code = 10910


class ResultNotSerializable(ExecutionError):
    """The function's result cannot be turned into JSON."""


class ResultNotFinite(ResultNotSerializable):
    """The function's result holds a float NaN or Infinity, which JSON cannot carry."""


class ConfigError(GlobalFuncError):
    """A setting is invalid."""


class Overloaded(GlobalFuncError):
    """Too many calls are waiting (for this function, or for any worker); retry later.

    ``details["retry_after"]`` is the number of seconds the HTTP edge puts in ``Retry-After``.
    """

    http_status = 503
    aiges_code = 10911


class ServerUnavailable(GlobalFuncError):
    """(Client side) the GlobalFunc server cannot be reached or did not give a usable answer."""

    http_status = 503


_BY_NAME: dict[str, type[GlobalFuncError]] = {
    cls.__name__: cls
    for cls in [GlobalFuncError, *(globals()[n] for n in __all__ if n[0].isupper())]
    if isinstance(cls, type) and issubclass(cls, GlobalFuncError)
}


_REMOTE: dict[type[Exception], type[ExecutionError]] = {}
_REMOTE_LOCK = threading.Lock()


def _builtin_exception(name: object) -> type[Exception] | None:
    """The built-in exception class called ``name`` (``"ValueError"``), if it is one."""
    if not isinstance(name, str) or not name.isidentifier():
        return None
    cls = getattr(builtins, name, None)
    if not isinstance(cls, type) or not issubclass(cls, Exception):
        return None  # BaseException-only types (SystemExit, KeyboardInterrupt) are not mixed
    if issubclass(cls, BaseExceptionGroup):
        return None
    return cls


def _remote_str(self: GlobalFuncError) -> str:
    return self.message  # KeyError's own __str__ would repr the message


def _remote_reduce(self: GlobalFuncError) -> tuple[Any, ...]:
    base: type[Exception] = getattr(type(self), "_remote_base", Exception)
    return (_rebuild_remote, (base.__name__, self.message, self.details))


def _rebuild_remote(type_name: str, message: str, details: dict[str, Any]) -> ExecutionError:
    base = _builtin_exception(type_name)
    cls = remote_error_class(base) if base is not None else ExecutionError
    return cls(message, **details)


def remote_error_class(base: type[Exception]) -> type[ExecutionError]:
    """The class that is both :class:`ExecutionError` and the built-in ``base``, made once.

    Its name is ``ExecutionError(ValueError)``; ``except ValueError`` and ``except
    ExecutionError`` both catch it. Built-ins whose constructor needs more than a message
    (``UnicodeDecodeError``, ...) or whose layout cannot be mixed get plain
    :class:`ExecutionError`.
    """
    with _REMOTE_LOCK:
        cls = _REMOTE.get(base)
    if cls is not None:
        return cls
    name = f"ExecutionError({base.__name__})"
    try:
        made = type(
            name,
            (ExecutionError, base),
            {
                "__module__": __name__,
                "__qualname__": name,
                "__doc__": f"A remote function raised {base.__name__}.",
                "__str__": _remote_str,
                "__reduce__": _remote_reduce,
                "_remote_base": base,
                "_wire_name": ExecutionError.__name__,
            },
        )
        made("probe")  # a constructor that needs more than a message fails here
    except TypeError:
        made = ExecutionError
    with _REMOTE_LOCK:
        return _REMOTE.setdefault(base, made)


def error_from_dict(body: dict[str, Any], status: int = 500) -> GlobalFuncError:
    """Rebuild the error an HTTP edge sent (``to_dict`` form), for clients.

    An ``ExecutionError`` whose ``details.exc_type`` names a built-in exception comes back
    as :func:`remote_error_class` of that type.
    """
    cls = _BY_NAME.get(str(body.get("error", "")), GlobalFuncError)
    message = str(body.get("message", f"server answered HTTP {status}"))
    details = body.get("details") or {}
    if not isinstance(details, dict):
        return cls(message)
    if cls is ExecutionError:
        base = _builtin_exception(details.get("exc_type"))
        if base is not None:
            cls = remote_error_class(base)
    return cls(message, **details)
