"""Counting implementation of the metrics seam: plain ints and dicts, read by the exporter when scraped.

Why not prometheus-client objects here: their ``inc`` takes a lock, and the engine layer stays free of any
exporter. A hook costs a dict update; histograms are a bisect and two adds. Everything runs on the event loop
(the file store reports its fsyncs from the loop after the thread returns), so no locking is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

from streamhub.core.metrics import Metrics

__all__ = ["LATENCY_BUCKETS", "SIZE_BUCKETS", "EngineMetrics", "Histogram"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)


class Histogram:
    """Observations per bucket (upper bounds, ``+Inf`` implied), their sum and count."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` pairs as Prometheus exposes them."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class EngineMetrics(Metrics):
    """Counts every hook. Keys of the dict counters are the label values, in the order the exporter names them."""

    enabled = True

    def __init__(self) -> None:
        self.joins = 0
        self.leaves = 0
        self.join_refusals: Counter[str] = Counter()
        self.resumes: Counter[bool] = Counter()
        self.connection_refusals: Counter[tuple[str, str]] = Counter()
        self.events: Counter[str] = Counter()
        self.deliveries = 0
        self.bytes_out: Counter[str] = Counter()
        self.cut_offs: Counter[str] = Counter()
        self.calls: Counter[tuple[str, bool]] = Counter()
        self.call_seconds: dict[str, Histogram] = {}
        self.triggers: Counter[tuple[str, bool]] = Counter()
        self.rest: Counter[tuple[str, str, int]] = Counter()
        self.adapter_seconds: dict[str, Histogram] = {}
        self.fsync_seconds = Histogram(LATENCY_BUCKETS)
        self.fsync_batch = Histogram(SIZE_BUCKETS)
        self.redis_errors: Counter[str] = Counter()
        self.redis_reconnects = 0
        self.redis_slot_map_changes = 0

    def joined(self) -> None:
        self.joins += 1

    def left(self) -> None:
        self.leaves += 1

    def join_refused(self, reason: str) -> None:
        self.join_refusals[reason] += 1

    def resumed(self, recovered: bool) -> None:
        self.resumes[recovered] += 1

    def connection_refused(self, port: str, reason: str) -> None:
        self.connection_refusals[(port, reason)] += 1

    def event_written(self, kind: str) -> None:
        self.events[kind] += 1

    def delivered(self, frames: int, size: int) -> None:
        self.deliveries += frames
        self.bytes_out["stream"] += size

    def sent(self, port: str, size: int) -> None:
        self.bytes_out[port] += size

    def cut_off(self, port: str) -> None:
        self.cut_offs[port] += 1

    def function_called(self, function_id: str, seconds: float, ok: bool) -> None:
        self.calls[(function_id, ok)] += 1
        histogram = self.call_seconds.get(function_id)
        if histogram is None:
            histogram = self.call_seconds[function_id] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def trigger_ran(self, kind: str, ok: bool) -> None:
        self.triggers[(kind, ok)] += 1

    def rest_request(self, method: str, route: str, status: int) -> None:
        self.rest[(method, route, status)] += 1

    def adapter_op(self, operation: str, seconds: float) -> None:
        histogram = self.adapter_seconds.get(operation)
        if histogram is None:
            histogram = self.adapter_seconds[operation] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def fsync(self, seconds: float, batch: int) -> None:
        self.fsync_seconds.observe(seconds)
        self.fsync_batch.observe(batch)

    def redis_error(self, kind: str) -> None:
        self.redis_errors[kind] += 1

    def redis_reconnected(self) -> None:
        self.redis_reconnects += 1

    def redis_slots_changed(self) -> None:
        self.redis_slot_map_changes += 1
