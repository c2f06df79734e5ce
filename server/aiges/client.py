"""A client that drives a plugin exactly as the AIGES loader does; for tests, bench and debugging.

It runs the plugin command with ``bash -c`` and the loader's environment
(``BASIC_PLUGIN=hello``, ``PLUGIN_MIN_PORT``/``PLUGIN_MAX_PORT``,
``PLUGIN_PROTOCOL_VERSIONS=1``), reads the handshake from the first stdout line, dials
insecure gRPC with 2^31-1 message limits, checks health ``plugin``, touches the broker and
stdio services (UNIMPLEMENTED tolerated), opens ``communicate`` once, and matches results
arriving there to requests by tag. It works against any plugin speaking the protocol
(ours or the reference ``python -m aiges.serve``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.aiges.proto import aiges_pb2, aiges_pb2_grpc, plugin_pb2, plugin_pb2_grpc

__all__ = ["Handshake", "LoaderClient", "PluginStartError", "StreamClosed", "loader_env"]

MAX_MESSAGE = 2**31 - 1


class PluginStartError(RuntimeError):
    """The plugin did not hand over a valid handshake line in time."""


class StreamClosed(ConnectionError):
    """The ``communicate`` stream ended (the plugin exited or the channel broke) before
    the result arrived."""


@dataclass(frozen=True, slots=True)
class Handshake:
    core_protocol: int
    app_protocol: int
    network: str
    address: str
    protocol: str

    @classmethod
    def parse(cls, line: str) -> Handshake:
        parts = line.strip().split("|")
        if len(parts) < 5:
            raise PluginStartError(f"not a go-plugin handshake line: {line!r}")
        return cls(int(parts[0]), int(parts[1]), parts[2], parts[3], parts[4])

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


def loader_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment the loader gives its plugin, over ``base`` (default ``os.environ``)."""
    env = dict(os.environ if base is None else base)
    env.update(
        BASIC_PLUGIN="hello",
        PLUGIN_MIN_PORT="10000",
        PLUGIN_MAX_PORT="25000",
        PLUGIN_PROTOCOL_VERSIONS="1",
    )
    env.update(extra)
    return env


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    box: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout)
    except queue.Empty:
        raise PluginStartError(f"no handshake line within {timeout:.0f}s") from None


class LoaderClient:
    """One plugin process and a loader-like connection to it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes] | None,
        handshake: Handshake,
        stderr_path: Path | None = None,
    ) -> None:
        self.process = process
        self.handshake = handshake
        self.stderr_path = stderr_path
        self.channel = grpc.insecure_channel(
            handshake.address,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        self.stub = aiges_pb2_grpc.WrapperServiceStub(self.channel)
        self._results: dict[str, queue.Queue[aiges_pb2.Response | None]] = {}
        self.stream_closed: str | None = None  # why communicate ended, once it has
        self._results_lock = threading.Lock()
        self._outgoing: queue.Queue[aiges_pb2.Request | None] = queue.Queue()
        self._stream: Any = None
        self._reader: threading.Thread | None = None
        self.stdout_lines: list[str] = []

    # -- start / stop -------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float = 60.0,
    ) -> LoaderClient:
        """Start ``command`` as the loader does and connect; raises :class:`PluginStartError`."""
        fd, stderr_name = tempfile.mkstemp(prefix="aiges-plugin-", suffix=".log")
        try:
            process = subprocess.Popen(
                ["bash", "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=fd,
                env=loader_env() if env is None else dict(env),
                cwd=None if cwd is None else str(cwd),
            )
        finally:
            os.close(fd)
        return cls.attach(process, Path(stderr_name), timeout=timeout)

    @classmethod
    def attach(
        cls, process: subprocess.Popen[bytes], stderr_path: Path | None, *, timeout: float = 60.0
    ) -> LoaderClient:
        """Connect to a plugin process already started with its stdout on a pipe: read its
        handshake line, then wait for its channel; raises :class:`PluginStartError`."""
        assert process.stdout is not None
        stderr_name = "" if stderr_path is None else str(stderr_path)
        try:
            line = _read_line(process.stdout, timeout)
            if not line:
                process.wait(5)
                raise PluginStartError(
                    f"plugin exited with {process.returncode} before its handshake; stderr:\n"
                    + (Path(stderr_name).read_text(errors="replace")[-4000:] if stderr_name else "")
                )
            handshake = Handshake.parse(line.decode("utf-8", "replace"))
        except BaseException:
            if process.poll() is None:
                process.kill()
                process.wait(5)
            raise
        client = cls(process, handshake, stderr_path)
        threading.Thread(target=client._drain_stdout, daemon=True).start()
        grpc.channel_ready_future(client.channel).result(timeout=timeout)
        return client

    def _drain_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            self.stdout_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def shutdown(self, timeout: float = 10.0) -> int | None:
        """Ask the plugin to exit (``GRPCController.Shutdown``) and wait for it."""
        with contextlib.suppress(grpc.RpcError):
            plugin_pb2_grpc.GRPCControllerStub(self.channel).Shutdown(
                plugin_pb2.Empty(), timeout=timeout
            )
        return self.wait(timeout)

    def wait(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Stop streams, close the channel and kill the process if it still runs."""
        self._outgoing.put(None)
        if self._stream is not None:
            self._stream.cancel()
        self.channel.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.stderr_path is not None:
            self.stderr_path.unlink(missing_ok=True)

    def __enter__(self) -> LoaderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loader's start-up sequence -------------------------------------------------
    def health(self, service: str = "plugin", timeout: float = 10.0) -> int:
        reply = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
        return int(reply.status)

    def probe_go_plugin_services(self, timeout: float = 2.0) -> dict[str, grpc.StatusCode]:
        """Call broker and stdio like go-plugin does; returns each call's status code."""
        codes: dict[str, grpc.StatusCode] = {}
        broker = plugin_pb2_grpc.GRPCBrokerStub(self.channel).StartStream(iter(()), timeout=timeout)
        codes["broker"] = _stream_status(broker)
        stdio = plugin_pb2_grpc.GRPCStdioStub(self.channel).StreamStdio(
            empty_pb2.Empty(), timeout=timeout
        )
        codes["stdio"] = _stream_status(stdio)
        return codes

    def init(self, config: Mapping[str, str] | None = None, timeout: float = 60.0) -> int:
        return int(
            self.stub.wrapperInit(
                aiges_pb2.InitRequest(config=dict(config or {})), timeout=timeout
            ).ret
        )

    def schema(self, service_id: str = "", timeout: float = 30.0) -> dict[str, Any]:
        data = self.stub.wrapperSchema(aiges_pb2.SvcId(serviceId=service_id), timeout=timeout).data
        doc: dict[str, Any] = json.loads(data)
        return doc

    # -- communicate --------------------------------------------------------------------
    def open_communicate(self) -> None:
        """Open the one ``communicate`` stream and start routing its results by tag."""
        if self._stream is not None:
            return

        def requests() -> Iterator[aiges_pb2.Request]:
            while True:
                item = self._outgoing.get()
                if item is None:
                    return
                yield item

        self._stream = self.stub.communicate(requests())
        self._reader = threading.Thread(target=self._read_results, daemon=True)
        self._reader.start()

    def _read_results(self) -> None:
        reason = "the plugin closed the communicate stream"
        try:
            for response in self._stream:
                self._queue_for(response.tag).put(response)
        except grpc.RpcError as exc:
            reason = f"communicate failed: {exc.code().name} {exc.details() or ''}".strip()
        finally:
            with self._results_lock:
                self.stream_closed = reason
                waiting = list(self._results.values())
            for q in waiting:
                q.put(None)  # wakes whoever waits for a result that will not come

    def _queue_for(self, tag: str) -> queue.Queue[aiges_pb2.Response | None]:
        with self._results_lock:
            found = self._results.get(tag)
            if found is None:
                found = self._results[tag] = queue.Queue()
                if self.stream_closed is not None:
                    found.put(None)
            return found

    def next_result(self, tag: str, timeout: float = 30.0) -> aiges_pb2.Response:
        """The next ``Response`` that arrived on ``communicate`` for ``tag``.

        Raises :class:`TimeoutError` after ``timeout`` seconds, :class:`StreamClosed` when
        the stream ended first.
        """
        try:
            item = self._queue_for(tag).get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"no result for tag {tag!r} on communicate within {timeout}s"
            ) from None
        if item is None:
            raise StreamClosed(self.stream_closed or "the communicate stream ended")
        return item

    def pending(self, tag: str) -> int:
        return self._queue_for(tag).qsize()

    # -- calls --------------------------------------------------------------------------
    @staticmethod
    def request(
        params: Mapping[str, str] | None = None,
        items: list[aiges_pb2.RequestData] | None = None,
        tag: str | None = None,
    ) -> aiges_pb2.Request:
        return aiges_pb2.Request(
            tag=tag or uuid.uuid4().hex, params=dict(params or {}), list=items or []
        )

    @staticmethod
    def text(
        key: str, text: str | bytes, status: int = 3, desc: Mapping[str, str] | None = None
    ) -> aiges_pb2.RequestData:
        data = text.encode("utf-8") if isinstance(text, str) else text
        return aiges_pb2.RequestData(
            key=key, data=data, len=len(data), type=0, status=status, desc=dict(desc or {})
        )

    def send_once(self, request: aiges_pb2.Request, timeout: float = 30.0) -> aiges_pb2.Response:
        """Send ``wrapperOnceExec``; returns its (ignored-by-the-loader) unary reply."""
        self._queue_for(request.tag)
        return self.stub.wrapperOnceExec(request, timeout=timeout)

    def once(
        self,
        params: Mapping[str, str] | None = None,
        items: list[aiges_pb2.RequestData] | None = None,
        timeout: float = 30.0,
    ) -> aiges_pb2.Response:
        """One request, answered by the result that arrives on ``communicate``."""
        self.open_communicate()
        request = self.request(params, items)
        self.send_once(request, timeout)
        try:
            return self.next_result(request.tag, timeout)
        finally:
            # Forget the tag's queue so long runs (benchmarks) do not grow the table forever.
            with self._results_lock:
                queued = self._results.get(request.tag)
                if queued is not None and queued.empty():
                    del self._results[request.tag]

    def create(
        self,
        params: Mapping[str, str] | None = None,
        sid: str = "",
        tag: str | None = None,
        timeout: float = 30.0,
    ) -> tuple[str, aiges_pb2.Handle]:
        self.open_communicate()
        tag = tag or uuid.uuid4().hex
        self._queue_for(tag)
        handle = self.stub.wrapperCreate(
            aiges_pb2.CreateRequest(params=dict(params or {}), sid=sid, tag=tag), timeout=timeout
        )
        return tag, handle

    def write(self, handle: str, items: list[aiges_pb2.RequestData], timeout: float = 30.0) -> int:
        # The loader leaves sid unset on writes.
        message = aiges_pb2.WriteMessage(req=aiges_pb2.Request(list=items), handle=handle)
        return int(self.stub.wrapperWrite(message, timeout=timeout).ret)

    def destroy(self, handle: str, timeout: float = 30.0) -> int:
        return int(self.stub.wrapperDestroy(aiges_pb2.Handle(handle=handle), timeout=timeout).ret)


def _stream_status(call: Any) -> grpc.StatusCode:
    try:
        for _ in call:
            pass
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
