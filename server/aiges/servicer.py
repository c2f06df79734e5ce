"""``aiges.WrapperService`` over an :class:`~server.aiges.engine.Engine`.

How results travel: the loader opens ``communicate`` once and keeps it open; every
result (once exec or session frame) is a ``Response`` queued on the
:class:`~server.aiges.queues.Outbox` and written on that stream. ``wrapperOnceExec`` only
hands the request to the user pool and acknowledges, or refuses it at once with
RESOURCE_EXHAUSTED when its bytes do not fit the :class:`~server.aiges.queues.ByteBudget`;
the job always queues exactly one ``Response`` for the tag, whatever the user code does
(raise, ``None``, empty list, ``error_code``). User code runs on its own
``ThreadPoolExecutor``; gRPC handler threads only wait for it on create/write/destroy,
and the ``communicate`` stream never waits for user code, so no pool size deadlocks.

The service is registered by :func:`add_wrapper_service`, which gives ``wrapperOnceExec``
a request deserializer of ours: a body that is not a valid
``aiges.Request`` becomes a :class:`BadBody` the servicer answers with INVALID_ARGUMENT,
instead of grpcio's "Exception deserializing message" path (INTERNAL, a logged traceback
and, measured, about 16 KB of memory kept per rejected body).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from server.aiges.engine import (
    EXEC_FAILED,
    INIT_FAILED,
    Engine,
    Frame,
    Outcome,
    normalise,
    with_error_detail,
)
from server.aiges.proto import aiges_pb2, aiges_pb2_grpc
from server.aiges.queues import MIB, ByteBudget, Outbox

__all__ = ["BadBody", "WrapperServicer", "add_wrapper_service", "response_message"]

log = logging.getLogger(__name__)

_STOP_POLL_SECONDS = 0.1
"""How soon an rpc waiting for a user call notices that the plugin is stopping."""


def _frames(items: Any) -> list[Frame]:
    return [
        Frame(key=d.key, data=d.data, type=d.type, status=d.status, desc=dict(d.desc))
        for d in items
    ]


class BadBody:
    """A wrapperOnceExec body protobuf refused, with protobuf's reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def parse_request(body: bytes) -> aiges_pb2.Request | BadBody:
    """``aiges.Request`` from ``body``, or :class:`BadBody` (never raises into grpcio)."""
    try:
        return aiges_pb2.Request.FromString(body)
    except (DecodeError, ValueError) as exc:
        return BadBody(str(exc) or type(exc).__name__)


SERVICE = "aiges.WrapperService"


def add_wrapper_service(servicer: WrapperServicer, server: grpc.Server) -> None:
    """Register ``aiges.WrapperService`` as the generated code does, from the proto's own
    descriptor, except that wrapperOnceExec's body goes through :func:`parse_request`."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in aiges_pb2.DESCRIPTOR.services_by_name["WrapperService"].methods:
        request_type = getattr(aiges_pb2, method.input_type.name)
        response_type = getattr(aiges_pb2, method.output_type.name)
        behaviour = getattr(servicer, method.name)
        deserializer = (
            parse_request if method.name == "wrapperOnceExec" else request_type.FromString
        )
        kind = (method.client_streaming, method.server_streaming)
        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[kind]
        handlers[method.name] = make(
            behaviour,
            request_deserializer=deserializer,
            response_serializer=response_type.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def response_message(tag: str, outcome: Outcome) -> aiges_pb2.Response:
    """The protobuf ``Response`` for a result."""
    return aiges_pb2.Response(
        tag=tag,
        ret=outcome.ret,
        list=[
            aiges_pb2.ResponseData(
                key=f.key, data=f.data, len=len(f.data), type=f.type, status=f.status, desc=f.desc
            )
            for f in outcome.frames
        ],
    )


class WrapperServicer(aiges_pb2_grpc.WrapperServiceServicer):
    """The WrapperService rpcs; see the module docstring for the threading model."""

    def __init__(
        self,
        engine: Engine,
        workers: int = 4,
        *,
        error_details: bool = False,
        queue_bytes: int = 256 * MIB,
    ) -> None:
        self.engine = engine
        self.error_details = error_details
        self.outbox = Outbox(queue_bytes)
        self.budget = ByteBudget(queue_bytes)
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="aiges-user")
        self.initialized = False
        engine.bind(self._emit)

    def _emit(self, tag: str, outcome: Outcome) -> None:
        outcome = normalise(outcome)
        if outcome.ret:
            log.warning("result for tag %s: ret %s %s", tag, outcome.ret, outcome.message)
            if self.error_details:
                outcome = with_error_detail(outcome)
        try:
            message = response_message(tag, outcome)
        except (ValueError, TypeError) as exc:  # normalise lets nothing through that fails here
            log.exception("result for tag %s cannot be encoded", tag)
            message = response_message(tag, Outcome.failure(EXEC_FAILED, str(exc)))
        self.outbox.put(message)

    def _run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the user pool and wait for it, but not past :meth:`close`."""
        future = self.pool.submit(fn, *args)
        while True:
            try:
                return future.result(timeout=_STOP_POLL_SECONDS)
            except FutureTimeout:
                if self.outbox.closed.is_set():
                    future.cancel()
                    raise RuntimeError("the plugin is stopping") from None

    def close(self) -> None:
        """Stop taking work: the stream ends, queued user jobs are dropped, and rpcs that
        wait for a running user call stop waiting within :data:`_STOP_POLL_SECONDS`."""
        self.outbox.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- lifecycle ----------------------------------------------------------------------
    def wrapperInit(
        self, request: aiges_pb2.InitRequest, context: grpc.ServicerContext
    ) -> aiges_pb2.Ret:
        config = dict(request.config)
        log.info("wrapperInit with %d config keys", len(config))
        try:
            ret = int(self._run(self.engine.init, config))
        except Exception:
            log.exception("engine init failed")
            ret = INIT_FAILED
        self.initialized = ret == 0
        return aiges_pb2.Ret(ret=ret)

    def wrapperSchema(
        self, request: aiges_pb2.SvcId, context: grpc.ServicerContext
    ) -> aiges_pb2.Schema:
        try:
            doc = self._run(self.engine.schema, request.serviceId)
            data = json.dumps(doc, ensure_ascii=False)
        except Exception as exc:
            log.exception("wrapperSchema failed")
            context.abort(grpc.StatusCode.INTERNAL, f"cannot build the schema: {exc}")
        return aiges_pb2.Schema(data=data)

    # -- once exec ----------------------------------------------------------------------
    def _once_job(self, request: aiges_pb2.Request, size: int) -> None:
        tag = request.tag
        outcome: Outcome | None = None
        try:
            outcome = self.engine.once(dict(request.params), _frames(request.list), tag)
        except Exception as exc:
            log.exception("once exec failed (tag %s)", tag)
            outcome = Outcome.failure(EXEC_FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            self.budget.give(size)
            self._emit(tag, outcome or Outcome.failure(EXEC_FAILED, "exec was interrupted"))

    def wrapperOnceExec(
        self, request: aiges_pb2.Request | BadBody, context: grpc.ServicerContext
    ) -> aiges_pb2.Response:
        if isinstance(request, BadBody):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"wrapperOnceExec: the body is not a valid aiges.Request ({request.reason}); "
                "send a serialized aiges.Request",
            )
            raise AssertionError("context.abort raises")  # for the type checker
        tag, size = request.tag, request.ByteSize()
        taken, held = self.budget.try_take(size)
        if not taken:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self.budget.refusal(tag, size, held))
        try:
            self.pool.submit(self._once_job, request, size)
        except RuntimeError:  # the pool is shut down: still answer the tag
            self.budget.give(size)
            self._emit(tag, Outcome.failure(EXEC_FAILED, "the plugin is shutting down"))
            return aiges_pb2.Response(tag=tag, ret=EXEC_FAILED)
        return aiges_pb2.Response(tag=tag, ret=0)

    # -- sessions -----------------------------------------------------------------------
    def wrapperCreate(
        self, request: aiges_pb2.CreateRequest, context: grpc.ServicerContext
    ) -> aiges_pb2.Handle:
        try:
            handle, code = self._run(
                self.engine.create, dict(request.params), request.sid, request.tag
            )
        except Exception:
            log.exception("create failed (tag %s)", request.tag)
            handle, code = "", EXEC_FAILED
        return aiges_pb2.Handle(handle=handle, err_code=code)

    def wrapperWrite(
        self, request: aiges_pb2.WriteMessage, context: grpc.ServicerContext
    ) -> aiges_pb2.Ret:
        try:
            ret = self._run(
                self.engine.write, request.handle, _frames(request.req.list), request.sid
            )
        except Exception:
            log.exception("write failed (handle %s)", request.handle)
            ret = EXEC_FAILED
        return aiges_pb2.Ret(ret=int(ret))

    def wrapperDestroy(
        self, request: aiges_pb2.Handle, context: grpc.ServicerContext
    ) -> aiges_pb2.Ret:
        try:
            ret = self._run(self.engine.destroy, request.handle)
        except Exception:
            log.exception("destroy failed (handle %s)", request.handle)
            ret = EXEC_FAILED
        return aiges_pb2.Ret(ret=int(ret))

    # -- streams ------------------------------------------------------------------------
    def communicate(
        self, request_iterator: Iterator[aiges_pb2.Request], context: grpc.ServicerContext
    ) -> Iterator[aiges_pb2.Response]:
        log.info("communicate stream opened by %s", context.peer())

        def drain() -> None:
            # The loader does not send on this stream; anything it does send is only logged.
            try:
                for message in request_iterator:
                    log.debug("communicate: ignoring inbound message tag %s", message.tag)
            except Exception:  # the stream ended or was cancelled
                return

        threading.Thread(target=drain, name="aiges-communicate-in", daemon=True).start()
        yield from self.outbox.stream(context)
        log.info("communicate stream closed")

    def testStream(
        self, request_iterator: Iterator[aiges_pb2.StreamRequest], context: grpc.ServicerContext
    ) -> Iterator[aiges_pb2.Response]:
        for i, message in enumerate(request_iterator):
            data = message.data.encode("utf-8")
            yield aiges_pb2.Response(
                tag=str(i),
                ret=0,
                list=[aiges_pb2.ResponseData(key="data", data=data, len=len(data), status=1)],
            )
