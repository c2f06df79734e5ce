"""Prometheus metrics of the HTTP server, kept with prometheus-client.

Exposes, in the Prometheus text format:

- ``gf_calls_total{function,status}``: function calls by HTTP status;
- ``gf_call_errors_total{function,error}``: failed calls by error class;
- ``gf_call_duration_seconds{function}``: call latency histogram;
- ``gf_http_requests_total{route,method,status}``: every request;
- ``gf_executor_workers``, ``gf_executor_busy`` (gauges), ``gf_executor_replaced_total``.

Function labels are only ever registered call names (unknown names are counted under
``function=""``) so a client cannot grow the label set.

With one server process the numbers live in the process (one ``CollectorRegistry`` per
:class:`Metrics`). With ``--processes N`` (``GF_PROCESSES``) the server calls
:func:`enable_multiprocess` before it forks: every process then writes its numbers to
files in a directory the server owns, and ``/metrics``, whichever process answers it,
adds up all of them (prometheus-client's multiprocess mode). The executor gauges are
summed over the live processes; each process refreshes its own every couple of seconds
(:meth:`Metrics.refresh_executor`), and the one answering a scrape just before it.

It does not push anywhere, start an HTTP server of its own, or create the directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import prometheus_client.values
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["BUCKETS", "CONTENT_TYPE", "Metrics", "enable_multiprocess"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

_LIVE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db$")


def enable_multiprocess(directory: str | os.PathLike[str]) -> None:
    """Switch prometheus-client to its multiprocess mode, writing into ``directory``.

    Call once, before any :class:`Metrics` is made and before forking. prometheus-client
    reads the directory from ``PROMETHEUS_MULTIPROC_DIR`` whenever a process opens its
    file, so the caller (the server's entry point) sets that variable too.
    """
    if getattr(prometheus_client.values.ValueClass, "_multiprocess", False):
        return
    prometheus_client.values.ValueClass = prometheus_client.values.MultiProcessValue()


class Metrics:
    """The server's counters, histograms and gauges.

    ``observe_*`` cost one dict look-up plus prometheus-client's increment: the labelled
    children are cached here so the hot path skips ``labels()``.
    """

    def __init__(self, multiprocess_dir: str | os.PathLike[str] | None = None) -> None:
        disable_created_metrics()  # no *_created series: they only add noise to every scrape
        self.multiprocess_dir = None if multiprocess_dir is None else Path(multiprocess_dir)
        self.registry = CollectorRegistry(auto_describe=False)
        reg = self.registry
        self._calls = Counter(
            "gf_calls", "Function calls by HTTP status.", ["function", "status"], registry=reg
        )
        self._errors = Counter(
            "gf_call_errors",
            "Failed function calls by error class.",
            ["function", "error"],
            registry=reg,
        )
        self._latency = Histogram(
            "gf_call_duration_seconds",
            "Function call latency, request to response.",
            ["function"],
            buckets=BUCKETS,
            registry=reg,
        )
        self._requests = Counter(
            "gf_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=reg,
        )
        self._workers = Gauge(
            "gf_executor_workers",
            "Worker processes in the pool.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._busy = Gauge(
            "gf_executor_busy",
            "Worker processes running a call.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._replaced = Counter(
            "gf_executor_replaced",
            "Workers replaced after a crash or timeout.",
            registry=reg,
        )
        self._replaced_seen = 0
        self._call_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._error_children: dict[tuple[str, str], Counter] = {}
        self._request_children: dict[tuple[str, str, int], Counter] = {}

    def observe_call(self, function: str, status: int, seconds: float, error: str | None) -> None:
        key = (function, status)
        children = self._call_children.get(key)
        if children is None:
            children = self._call_children[key] = (
                self._calls.labels(function, str(status)),
                self._latency.labels(function),
            )
        children[0].inc()
        children[1].observe(seconds)
        if error is not None:
            ekey = (function, error)
            counter = self._error_children.get(ekey)
            if counter is None:
                counter = self._error_children[ekey] = self._errors.labels(function, error)
            counter.inc()

    def observe_request(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self._requests.labels(
                route, method, str(status)
            )
        counter.inc()

    def refresh_executor(self, executor_stats: Callable[[], dict[str, int]]) -> None:
        """Copy this process's executor numbers into the gauges and the replaced counter."""
        stats = executor_stats()
        self._workers.set(stats.get("workers", 0))
        self._busy.set(stats.get("busy", 0))
        replaced = stats.get("replaced", 0)
        if replaced > self._replaced_seen:
            self._replaced.inc(replaced - self._replaced_seen)
        self._replaced_seen = max(self._replaced_seen, replaced)

    def render(self, executor_stats: Callable[[], dict[str, int]] | None = None) -> bytes:
        """The text exposition: this process's numbers, or every process's when multiprocess."""
        if executor_stats is not None:
            self.refresh_executor(executor_stats)
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self._forget_dead_processes()
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))
        return generate_latest(merged)

    def _forget_dead_processes(self) -> None:
        """Drop the live-gauge files of server processes that died (tornado restarts them)."""
        assert self.multiprocess_dir is not None
        for path in self.multiprocess_dir.glob("gauge_live*_*.db"):
            match = _LIVE_FILE.search(path.name)
            if match is None:
                continue
            pid = int(match.group(1))
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    mark_process_dead(pid, str(self.multiprocess_dir))
            except PermissionError:  # alive, another user's: not ours to judge
                pass
