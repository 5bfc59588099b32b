"""The engine: owns the adapter, the registries and the hub, and runs the write -> route -> triggers path.

Transports sit outside: they turn sockets into calls of ``Engine.call``, ``Engine.clients`` and
``Engine.workers``. Use it as ``async with Engine(adapter) as engine: ...``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.cluster import ClusterBus
from streamhub.adapters.presence import MemoryPresence, PresenceStore
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.triggers import TriggerIndex
from streamhub.core.values import DEFAULT_MAX_DEPTH
from streamhub.engine.catalog import Catalog
from streamhub.engine.client_sessions import ClientSessions
from streamhub.engine.cluster import Cluster
from streamhub.engine.engine_events import EngineEvents
from streamhub.engine.functions import Builtin, FunctionMeta, FunctionRegistry, WorkerLink
from streamhub.engine.hub import Hub
from streamhub.engine.introspection import Introspection
from streamhub.engine.invocations import Invocations
from streamhub.engine.presence import DEFAULT_MAX_INFO_BYTES, DEFAULT_MAX_MEMBERS, Presence
from streamhub.engine.stream_functions import DESCRIPTIONS, StreamFunctions
from streamhub.engine.timed_adapter import TimedAdapter
from streamhub.engine.trigger_runner import TriggerRunner
from streamhub.engine.trigger_types import WorkerTriggerTypes
from streamhub.engine.workers import WorkerSessions
from streamhub.errors import FunctionNotFound

__all__ = ["Engine"]

log = logging.getLogger(__name__)

_CLOSE_STEP = 3.0  # seconds each part of the engine gets to stop before the next one is closed anyway


class Engine:
    """One streamhub node.

    Args:
        adapter: storage and event bus.
        invocation_timeout: seconds a worker function may take before the caller gets ``InvocationTimeout``.
        join_timeout: seconds a join/leave trigger may take.
        max_value_depth: nesting limit of every value entering a store or passed on from a REST body.
        metrics: the observability seam (``core.metrics``); the default counts nothing and times nothing.
        functions_available_delay: seconds after a change of the function set before
            ``engine::functions-available`` fires (one call per burst of registrations).
        presence: who is in which group (default: this engine's memory); max_presence_members and
            max_presence_info_bytes bound what a member list and a member's info may hold.
        cluster: the link to the other engines of the deployment (Redis; docs/cluster.md): functions and
            triggers of every engine then serve this one. None: a single engine.
        cluster_lease: seconds a killed engine's functions and triggers outlive it at most.
    """

    def __init__(self, adapter: StreamAdapter, *, invocation_timeout: float = 30.0,
                 join_timeout: float = 10.0, max_value_depth: int = DEFAULT_MAX_DEPTH,
                 metrics: Metrics = NULL_METRICS, functions_available_delay: float = 0.25,
                 presence: PresenceStore | None = None, max_presence_members: int = DEFAULT_MAX_MEMBERS,
                 max_presence_info_bytes: int = DEFAULT_MAX_INFO_BYTES, cluster: ClusterBus | None = None,
                 cluster_lease: float = 5.0) -> None:
        self.adapter = adapter
        self.presence = Presence(presence or MemoryPresence(), max_members=max_presence_members)
        self.invocation_timeout = invocation_timeout
        self.max_value_depth = max_value_depth
        self.metrics = metrics
        store: StreamAdapter = TimedAdapter(adapter, metrics) if metrics.enabled else adapter
        self.hub = Hub(metrics)
        self.functions = FunctionRegistry()
        self.triggers = TriggerIndex()
        self.invocations = Invocations()
        self.runner = TriggerRunner(self.call, self.triggers, timeout=invocation_timeout, metrics=metrics)
        self.clients = ClientSessions(self.hub, store, self.triggers, self.call, join_timeout, metrics,
                                      self.presence, max_presence_info_bytes)
        self.trigger_types = WorkerTriggerTypes()
        self.catalog = Catalog(self)
        self.events = EngineEvents(self.call, lambda: [row.summary() for row in self.catalog.functions()],
                                   delay=functions_available_delay)
        self.functions.on_change = self.events.functions_changed
        self.cluster: Cluster | None = None
        if cluster is not None:
            self.cluster = Cluster(cluster, self.functions, self.triggers, self.call_local, lease=cluster_lease)
            self.functions.on_change = self._functions_changed
            self.triggers.on_change = self.cluster.changed
        self.workers = WorkerSessions(self)
        builtins = StreamFunctions(store, self.runner.submit, max_value_depth=max_value_depth,
                                   metrics=metrics, presence=self.presence).builtins()
        for function_id, handler in builtins.items():  # ``stream.NAME`` are aliases: callable, not listed
            self.functions.add_builtin(function_id, handler, FunctionMeta(description=DESCRIPTIONS.get(function_id)),
                                       listed=function_id in DESCRIPTIONS)
        for function_id, (handler, meta) in Introspection(self.catalog).builtins().items():
            self.functions.add_builtin(function_id, handler, meta)

    async def start(self) -> None:
        """Open the adapter and start delivering events and running triggers."""
        await self.adapter.start(self.hub.dispatch, self.clients.resync)
        await self.presence.start()
        if self.cluster is not None:
            await self.cluster.start()
        self.runner.start()
        self.events.start()

    async def close(self) -> None:
        """Finish queued trigger work, then close the adapter (flushing acknowledged writes).

        Every step is bounded: one that does not finish (a peer engine or Redis that stops answering mid-stop) is
        logged by name and left behind, so the next ones still close and the process stops. Leaving the store's
        close early loses nothing acknowledged: a write is acknowledged only once durable.
        """
        steps: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("engine events", self.events.close, _CLOSE_STEP),
            ("trigger runner", self.runner.close, _CLOSE_STEP + 5.0),  # it drains queued work for up to 5 s
            ("client sessions", self.clients.close, _CLOSE_STEP),
        ]
        if self.cluster is not None:
            steps.append(("cluster", self.cluster.close, _CLOSE_STEP))
        steps.append(("presence", self.presence.close, _CLOSE_STEP))
        steps.append(("store", self.adapter.close, _CLOSE_STEP + 5.0))  # acknowledged writes are already durable
        for name, step, seconds in steps:
            try:
                await asyncio.wait_for(step(), seconds)
            except TimeoutError:
                log.warning("stopping: %s did not close within %g s; going on", name, seconds)
        log.info("engine stopped: %d frames delivered, %d trigger failures",
                 self.hub.delivered, self.runner.failures)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def call(self, function_id: str, data: Any, timeout: float | None = None) -> Any:
        """Invoke a function by id, wherever it lives.

        Returns:
            The result, or ``NO_RESULT`` when the function answered without one.

        Raises:
            FunctionNotFound, InvalidRequest, InvocationError, AdapterError: with a wire ``code``.
        """
        target = self._resolve(function_id, timeout)
        if not self.metrics.enabled:
            if callable(target):
                return await target(data)
            return await self.invocations.invoke(target, function_id, data, timeout or self.invocation_timeout)
        started = time.perf_counter()
        ok = False
        try:
            if callable(target):
                result = await target(data)
            else:
                result = await self.invocations.invoke(target, function_id, data, timeout or self.invocation_timeout)
            ok = True
            return result
        finally:
            self.metrics.function_called(function_id, time.perf_counter() - started, ok)

    async def call_local(self, function_id: str, data: Any, timeout: float) -> Any:
        """Invoke a function this engine answers itself (a call routed here by another engine)."""
        target = self.functions.resolve(function_id)
        if callable(target):
            return await target(data)
        return await self.invocations.invoke(target, function_id, data, timeout)

    def _resolve(self, function_id: str, timeout: float | None) -> Builtin | WorkerLink:
        """Local first (workers, then builtins); else the engine of the cluster that serves it."""
        try:
            return self.functions.resolve(function_id)
        except FunctionNotFound:
            if self.cluster is None:
                raise
            return self.cluster.route(function_id, timeout or self.invocation_timeout)

    def _functions_changed(self) -> None:
        self.events.functions_changed()
        if self.cluster is not None:
            self.cluster.changed()
