"""The one observability seam: hooks the engine, adapters and transports call when something countable happens.

Why one interface: instrumentation stays in one place (``engine/metrics.py`` counts, the admin module exports),
and a server without the admin module pays one no-op method call per hook. Hooks are called per event, per join,
per call or per request, never per delivery to each subscriber: the hub reports how many subscribers got a frame
in one call. Gauges (connections, subscriptions, backlog, queue depth) are not hooks at all: the exporter reads
them from the live objects when scraped.

Lives in ``core`` because adapters (which must not import the engine) call it too.
"""

from __future__ import annotations

__all__ = ["NULL_METRICS", "Metrics"]


class Metrics:
    """No-op hooks; ``engine.metrics.EngineMetrics`` overrides them to count. Arguments are low-cardinality labels
    chosen by the engine (never a client-supplied name) and plain numbers."""

    enabled = False  # True when the hooks count: callers may skip measuring (timers) when False

    # Client sessions (stream port)

    def joined(self) -> None:
        """A join was accepted (its ``sync`` or replay is on its way)."""

    def left(self) -> None:
        """A subscription ended (leave or disconnect)."""

    def join_refused(self, reason: str) -> None:
        """A join got no subscription: a join guard's reason (``refused``, ``guard_timeout``, ...), ``cap`` (too
        many subscriptions on the connection) or ``error`` (its snapshot could not be read)."""

    def resumed(self, recovered: bool) -> None:
        """A join carried a position: ``recovered`` when the missed events were replayed, else a fresh ``sync``."""

    def connection_refused(self, port: str, reason: str) -> None:
        """An upgrade was refused before any socket opened: ``auth``, ``origin``."""

    # Writes and fan-out

    def event_written(self, kind: str) -> None:
        """A stream function produced an event of ``kind`` (create, update, delete, event)."""

    def delivered(self, frames: int, size: int) -> None:
        """The hub handed one event's frame to ``frames`` subscriptions, ``size`` bytes in all."""

    def sent(self, port: str, size: int) -> None:
        """``size`` bytes queued to one connection outside the hub's fan-out (sync, replies, worker messages)."""

    def cut_off(self, port: str) -> None:
        """A connection was closed because it could not keep up (slow consumer)."""

    # Functions and triggers

    def function_called(self, function_id: str, seconds: float, ok: bool) -> None:
        """``Engine.call`` finished; ``function_id`` is a registered id (unknown ids are not reported)."""

    def trigger_ran(self, kind: str, ok: bool) -> None:
        """A trigger of ``kind`` (stream, leave, ...) was invoked; ``ok`` False when it failed."""

    def rest_request(self, method: str, route: str, status: int) -> None:
        """The REST port answered; ``route`` is the registered pattern (``unmatched`` when none matched)."""

    # Stores

    def adapter_op(self, operation: str, seconds: float) -> None:
        """One adapter call (set, get, snapshot, ...) took ``seconds``."""

    def fsync(self, seconds: float, batch: int) -> None:
        """The file store wrote and fsynced one group commit of ``batch`` writes in ``seconds``."""

    def redis_error(self, kind: str) -> None:
        """A Redis command failed: ``connection``, ``timeout`` or ``error``."""

    def redis_reconnected(self) -> None:
        """The Redis pub/sub connection came back after a break."""

    def redis_slots_changed(self) -> None:
        """A Redis Cluster's slot map changed (a slot moved, a primary failed over): routes and subscriptions follow."""


NULL_METRICS = Metrics()
