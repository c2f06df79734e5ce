"""The grpcio plugin server's queue rules (server/aiges/queues.py), without a network.

The same rules against real plugin processes of both servers are in
tests/integration/test_aiges_native_limits.py; these pin the edges: the budget's
"one body alone may be larger", the outbox's trimming order and what a stream that
ends mid-send gives back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from server.aiges.proto import aiges_pb2
from server.aiges.queues import DROPPED_RET, ENTRY_COST, MIB, ByteBudget, Outbox


class FakeContext:
    """What Outbox.stream asks of a grpc.ServicerContext."""

    def __init__(self) -> None:
        self.active = True
        self.cancelled = False
        self.callbacks: list[Any] = []

    def is_active(self) -> bool:
        return self.active

    def add_callback(self, callback: Any) -> bool:
        self.callbacks.append(callback)
        return True

    def cancel(self) -> None:
        self.cancelled = True
        self.active = False
        for callback in self.callbacks:
            callback()


def result(tag: str, size: int) -> aiges_pb2.Response:
    return aiges_pb2.Response(tag=tag, list=[aiges_pb2.ResponseData(key="k", data=b"x" * size)])


def test_the_budget_refuses_what_does_not_fit_but_one_large_body_runs_alone() -> None:
    budget = ByteBudget(10)
    assert budget.try_take(25) == (True, 0)  # alone: runs however large
    assert budget.try_take(1) == (False, 25)
    budget.give(25)
    assert budget.try_take(6) == (True, 0)
    assert budget.try_take(4) == (True, 6)
    assert budget.try_take(1) == (False, 10)
    assert "tag t: 1 bytes would exceed GF_AIGES_QUEUE_MB=0" in budget.refusal("t", 1, 10)


def test_the_outbox_replaces_the_oldest_and_keeps_the_newest_whole() -> None:
    outbox = Outbox(limit=3 * MIB)
    for i in range(5):
        outbox.put(result(f"r{i}", MIB))
    context = FakeContext()
    stream = outbox.stream(context)
    got = [next(stream) for _ in range(5)]
    assert [r.tag for r in got] == ["r0", "r1", "r2", "r3", "r4"]
    assert [r.ret for r in got[:3]] == [DROPPED_RET] * 3 and not got[0].list
    assert [len(r.list[0].data) for r in got[3:]] == [MIB, MIB]
    outbox.put(result("big", 5 * MIB))  # alone over the limit: still whole
    assert len(next(stream).list[0].data) == 5 * MIB
    outbox.close()


def test_a_newer_stream_takes_over_and_the_result_in_flight_is_sent_again_first() -> None:
    outbox = Outbox(limit=64 * MIB)
    old_context = FakeContext()
    old = outbox.stream(old_context)
    outbox.put(result("a", 10))
    outbox.put(result("b", 10))
    assert next(old).tag == "a"  # handed to grpcio, which cannot say whether it went out
    new_context = FakeContext()
    new = outbox.stream(new_context)
    first = next(new)
    assert old_context.cancelled
    old.close()  # type: ignore[attr-defined]  # grpcio drops the old stream's iterator
    assert first.tag == "b"
    assert next(new).tag == "a"  # again: it may have arrived already (README says so)
    outbox.close()


def test_a_result_given_back_is_the_first_dropped_when_over_the_limit() -> None:
    outbox = Outbox(limit=3 * MIB)
    old = outbox.stream(FakeContext())
    outbox.put(result("old", 2 * MIB))
    assert next(old).tag == "old"
    new = outbox.stream(FakeContext())
    old.close()  # type: ignore[attr-defined]  # "old" is given back, 2 MiB queued again
    for i in range(1, 4):
        outbox.put(result(f"r{i}", MIB - ENTRY_COST - 64))  # three fit in 3 MiB
    got = [next(new) for _ in range(4)]
    assert [(r.tag, r.ret, len(r.list)) for r in got] == [
        ("old", DROPPED_RET, 0),
        ("r1", 0, 1),
        ("r2", 0, 1),
        ("r3", 0, 1),
    ]
    outbox.close()


def test_the_first_drops_are_told_at_once(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(limit=MIB)
    with caplog.at_level(logging.WARNING, logger="server.aiges.queues"):
        outbox.put(result("x", MIB))
        outbox.put(result("y", MIB))
    assert any(
        "1 oldest result(s)" in r.getMessage() and "tags x" in r.getMessage()
        for r in caplog.records
    )
    outbox.close()


def test_close_ends_a_waiting_stream() -> None:
    outbox = Outbox()
    context = FakeContext()
    stream = outbox.stream(context)
    done = threading.Event()

    def read() -> None:
        for _ in stream:
            pass
        done.set()

    threading.Thread(target=read, daemon=True).start()
    outbox.close()
    assert done.wait(2.0)


def test_small_results_count_what_holding_them_costs_and_drops_free_the_limit() -> None:
    outbox = Outbox(limit=100 * ENTRY_COST)
    for i in range(1000):  # error answers: a tag and a code, no data
        outbox.put(aiges_pb2.Response(tag=f"e{i}", ret=10101))
    stream = outbox.stream(FakeContext())
    got = [next(stream) for _ in range(1000)]
    kept = [r for r in got if r.ret == 10101]
    assert 90 <= len(kept) < 100 and kept[-1].tag == "e999"  # the newest ~100, not one
    assert [r.tag for r in got] == [f"e{i}" for i in range(1000)]
    outbox.close()
