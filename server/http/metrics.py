"""Prometheus counters and latency histograms for the HTTP server, kept in process memory.

Exposes, in the Prometheus text format (0.0.4):

- ``gf_calls_total{function,status}``: function calls by HTTP status;
- ``gf_call_errors_total{function,error}``: failed calls by error class;
- ``gf_call_duration_seconds{function}``: call latency histogram;
- ``gf_http_requests_total{route,method,status}``: every request;
- ``gf_executor_workers``, ``gf_executor_busy``, ``gf_executor_replaced_total``.

Function labels are only ever registered call names (unknown names are counted under
``function=""``) so a client cannot grow the label set. With ``--processes N`` each
process keeps its own numbers: scrape each, or run one process per container.
No prometheus_client dependency, no push gateway.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable

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


class _Histogram:
    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0


class Metrics:
    """Counters and histograms; ``observe_*`` are O(1) and cheap enough for every request."""

    def __init__(self) -> None:
        self.calls: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}

    def observe_call(self, function: str, status: int, seconds: float, error: str | None) -> None:
        self.calls[(function, status)] += 1
        if error is not None:
            self.errors[(function, error)] += 1
        hist = self.latency.get(function)
        if hist is None:
            hist = self.latency[function] = _Histogram()
        hist.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        hist.total += seconds
        hist.count += 1

    def observe_request(self, route: str, method: str, status: int) -> None:
        self.requests[(route, method, status)] += 1

    def render(self, executor_stats: Callable[[], dict[str, int]] | None = None) -> str:
        """The Prometheus text exposition of everything observed so far."""
        out: list[str] = [
            "# HELP gf_calls_total Function calls by HTTP status.",
            "# TYPE gf_calls_total counter",
        ]
        for (function, status), n in sorted(self.calls.items()):
            out.append(f'gf_calls_total{{function="{_esc(function)}",status="{status}"}} {n}')
        out += [
            "# HELP gf_call_errors_total Failed function calls by error class.",
            "# TYPE gf_call_errors_total counter",
        ]
        for (function, error), n in sorted(self.errors.items()):
            out.append(
                f'gf_call_errors_total{{function="{_esc(function)}",error="{_esc(error)}"}} {n}'
            )
        out += [
            "# HELP gf_call_duration_seconds Function call latency, request to response.",
            "# TYPE gf_call_duration_seconds histogram",
        ]
        for function, hist in sorted(self.latency.items()):
            label = f'function="{_esc(function)}"'
            running = 0
            for bound, n in zip(BUCKETS, hist.counts, strict=False):
                running += n
                out.append(f'gf_call_duration_seconds_bucket{{{label},le="{bound:g}"}} {running}')
            out.append(f'gf_call_duration_seconds_bucket{{{label},le="+Inf"}} {hist.count}')
            out.append(f"gf_call_duration_seconds_sum{{{label}}} {hist.total:.6f}")
            out.append(f"gf_call_duration_seconds_count{{{label}}} {hist.count}")
        out += [
            "# HELP gf_http_requests_total HTTP requests by route, method and status.",
            "# TYPE gf_http_requests_total counter",
        ]
        for (route, method, status), n in sorted(self.requests.items()):
            out.append(
                f'gf_http_requests_total{{route="{_esc(route)}",method="{method}",'
                f'status="{status}"}} {n}'
            )
        if executor_stats is not None:
            stats = executor_stats()
            out += [
                "# HELP gf_executor_workers Worker processes in the pool.",
                "# TYPE gf_executor_workers gauge",
                f"gf_executor_workers {stats.get('workers', 0)}",
                "# HELP gf_executor_busy Worker processes running a call.",
                "# TYPE gf_executor_busy gauge",
                f"gf_executor_busy {stats.get('busy', 0)}",
                "# HELP gf_executor_replaced_total Workers replaced after a crash or timeout.",
                "# TYPE gf_executor_replaced_total counter",
                f"gf_executor_replaced_total {stats.get('replaced', 0)}",
            ]
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
