"""Prometheus export of the metrics seam: one collector that reads ``EngineMetrics`` and the live objects.

Why a collector rather than prometheus-client ``Counter`` objects: the engine counts in plain ints (no lock on the
hot path) and gauges such as connections or outbox backlog are read only when scraped. Each ``Server`` gets its
own ``CollectorRegistry``, so several engines in one process (tests) never share series.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from streamhub.core.model import CREATE, CUSTOM, DELETE, UPDATE
from streamhub.core.triggers import LEAVE, STREAM
from streamhub.engine.engine import Engine
from streamhub.engine.metrics import EngineMetrics, Histogram
from streamhub.protocol.client_messages import GUARD_FAILED, GUARD_TIMEOUT, GUARD_UNAVAILABLE, REFUSED
from streamhub.transport.limits import ConnectionGuard

__all__ = ["METRIC_NAMES", "MetricsSource", "metrics_registry"]

_EVENT_TYPES = (CREATE, UPDATE, DELETE, CUSTOM)
_SESSION_PORTS = ("stream", "worker")
_JOIN_REFUSALS = ("cap", "error", REFUSED, GUARD_FAILED, GUARD_TIMEOUT, GUARD_UNAVAILABLE)
_TRIGGER_TYPES = (STREAM, LEAVE)  # the types whose runs are counted, shown at 0 before the first run

METRIC_NAMES = (
    "streamhub_connections", "streamhub_websocket_connections", "streamhub_subscriptions",
    "streamhub_connection_refusals_total", "streamhub_joins_total", "streamhub_leaves_total",
    "streamhub_join_refusals_total", "streamhub_resumes_total", "streamhub_events_total",
    "streamhub_deliveries_total", "streamhub_bytes_out_total", "streamhub_slow_consumer_cutoffs_total",
    "streamhub_outbox_backlog_bytes", "streamhub_functions", "streamhub_function_calls_total",
    "streamhub_function_call_seconds", "streamhub_trigger_invocations_total", "streamhub_trigger_failures_total",
    "streamhub_trigger_queue_depth", "streamhub_adapter_operation_seconds", "streamhub_fsync_seconds",
    "streamhub_fsync_batch_size", "streamhub_redis_errors_total", "streamhub_redis_reconnects_total",
    "streamhub_redis_slot_map_changes_total", "streamhub_rest_requests_total",
)
"""Every family this exporter writes (README "Operate" lists them), plus ``process_*`` from prometheus-client."""


class MetricsSource(Protocol):
    """What the exporter reads when scraped (``Server`` provides it)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def guards(self) -> Mapping[str, ConnectionGuard]: ...

    def session_counts(self) -> dict[str, int]:
        """Open WebSocket sessions per port (``stream``, ``worker``)."""

    def backlogs(self) -> dict[str, int]:
        """Bytes queued and unsent, per port."""


def metrics_registry(source: MetricsSource, metrics: EngineMetrics) -> CollectorRegistry:
    """A private registry holding this engine's collector and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_EngineCollector(source, metrics))
    ProcessCollector(registry=registry)
    return registry


class _EngineCollector:
    """Builds every ``streamhub_*`` family from the counts and the live objects at scrape time."""

    def __init__(self, source: MetricsSource, metrics: EngineMetrics) -> None:
        self._source = source
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._connections()
        yield from self._sessions()
        yield from self._delivery()
        yield from self._functions()
        yield from self._stores()

    def _connections(self) -> Iterator[Metric]:
        guards = self._source.guards
        open_ = GaugeMetricFamily("streamhub_connections", "Open sockets admitted on each port (HTTP and WebSocket)",
                                  labels=["port"])
        refused = CounterMetricFamily("streamhub_connection_refusals",
                                      "Connections refused before a session opened, by port and reason",
                                      labels=["port", "reason"])
        for name, guard in guards.items():
            open_.add_metric([name], guard.open_connections)
            refused.add_metric([name, "max_connections"], guard.refused)
            refused.add_metric([name, "handshake_timeout"], guard.timed_out)
        for (port, reason), count in self._m.connection_refusals.items():
            refused.add_metric([port, reason], count)
        sessions = GaugeMetricFamily("streamhub_websocket_connections", "Open WebSocket sessions on each port",
                                     labels=["port"])
        for name, count in self._source.session_counts().items():
            sessions.add_metric([name], count)
        subscriptions = GaugeMetricFamily("streamhub_subscriptions", "Open client subscriptions", labels=["port"])
        subscriptions.add_metric(["stream"], self._source.engine.hub.subscription_count())
        yield from (open_, refused, sessions, subscriptions)

    def _sessions(self) -> Iterator[Metric]:
        m = self._m
        yield CounterMetricFamily("streamhub_joins", "Joins accepted", value=m.joins)
        yield CounterMetricFamily("streamhub_leaves", "Subscriptions ended (leave or disconnect)", value=m.leaves)
        refusals = CounterMetricFamily("streamhub_join_refusals", "Joins refused, by reason", labels=["reason"])
        for reason in sorted({*_JOIN_REFUSALS, *m.join_refusals}):
            refusals.add_metric([reason], m.join_refusals[reason])
        resumes = CounterMetricFamily("streamhub_resumes", "Joins that carried a position; recovered=true when "
                                      "the missed events were replayed", labels=["recovered"])
        for recovered in (True, False):
            resumes.add_metric([str(recovered).lower()], m.resumes[recovered])
        yield from (refusals, resumes)

    def _delivery(self) -> Iterator[Metric]:
        m = self._m
        events = CounterMetricFamily("streamhub_events", "Events written by stream functions, by type",
                                     labels=["type"])
        for kind in _EVENT_TYPES:
            events.add_metric([kind], m.events[kind])
        yield events
        yield CounterMetricFamily("streamhub_deliveries", "Event frames handed to subscriptions",
                                  value=m.deliveries)
        out = CounterMetricFamily("streamhub_bytes_out", "Bytes of frames queued to connections", labels=["port"])
        cut = CounterMetricFamily("streamhub_slow_consumer_cutoffs",
                                  "Connections closed because they could not keep up", labels=["port"])
        backlog = GaugeMetricFamily("streamhub_outbox_backlog_bytes", "Bytes queued to connections and not yet "
                                    "read by them", labels=["port"])
        backlogs = self._source.backlogs()
        for port in _SESSION_PORTS:
            out.add_metric([port], m.bytes_out[port])
            cut.add_metric([port], m.cut_offs[port])
            backlog.add_metric([port], backlogs.get(port, 0))
        yield from (out, cut, backlog)

    def _functions(self) -> Iterator[Metric]:
        m = self._m
        engine = self._source.engine
        yield GaugeMetricFamily("streamhub_functions", "Functions served by connected workers",
                                value=len(engine.functions.remote()))
        calls = CounterMetricFamily("streamhub_function_calls", "Function calls, by function and outcome",
                                    labels=["function", "outcome"])
        for (function_id, ok), count in sorted(m.calls.items()):
            calls.add_metric([function_id, "ok" if ok else "error"], count)
        yield calls
        yield _histogram("streamhub_function_call_seconds", "Function call latency", "function", m.call_seconds)
        runs = CounterMetricFamily("streamhub_trigger_invocations", "Trigger invocations, by trigger type",
                                   labels=["type"])
        failures = CounterMetricFamily("streamhub_trigger_failures", "Trigger invocations that failed",
                                       labels=["type"])
        kinds = sorted({*_TRIGGER_TYPES, *(kind for kind, _ in m.triggers)})
        for kind in kinds:
            runs.add_metric([kind], m.triggers[(kind, True)] + m.triggers[(kind, False)])
            failures.add_metric([kind], m.triggers[(kind, False)])
        yield from (runs, failures)
        yield GaugeMetricFamily("streamhub_trigger_queue_depth", "Events waiting for their stream triggers",
                                value=engine.runner.queue_depth)
        rest = CounterMetricFamily("streamhub_rest_requests", "REST requests, by method, registered route and "
                                   "status", labels=["method", "route", "status"])
        for (method, route, status), count in sorted(m.rest.items()):
            rest.add_metric([method, route, str(status)], count)
        yield rest

    def _stores(self) -> Iterator[Metric]:
        m = self._m
        yield _histogram("streamhub_adapter_operation_seconds", "Store operation latency", "operation",
                         m.adapter_seconds)
        yield _histogram("streamhub_fsync_seconds", "File store group commit: write + fsync time", None,
                         {"": m.fsync_seconds})
        yield _histogram("streamhub_fsync_batch_size", "File store group commit: writes per fsync", None,
                         {"": m.fsync_batch})
        errors = CounterMetricFamily("streamhub_redis_errors", "Failed Redis commands, by kind", labels=["kind"])
        for kind in ("connection", "timeout", "error"):
            errors.add_metric([kind], m.redis_errors[kind])
        yield errors
        yield CounterMetricFamily("streamhub_redis_reconnects", "Redis pub/sub reconnections after a break",
                                  value=m.redis_reconnects)
        yield CounterMetricFamily("streamhub_redis_slot_map_changes",
                                  "Redis Cluster slot map changes followed (slots moved, failovers)",
                                  value=m.redis_slot_map_changes)


def _histogram(name: str, documentation: str, label: str | None, series: Mapping[str, Histogram]
               ) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label] if label else None)
    for value, histogram in sorted(series.items()):
        family.add_metric([value] if label else [], histogram.cumulative(), histogram.total)
    return family
