"""Runs ``stream`` triggers off the write path.

Writers hand events to a bounded queue and return; a fixed pool of tasks invokes the matching triggers
(condition first, then handler, each with a timeout). A slow or failing handler therefore never delays delivery
to subscribers, and its error is logged. When the queue is full the *writer* waits for room (back-pressure on
callers), so no trigger invocation is ever dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.model import StreamEvent
from streamhub.core.triggers import Trigger, TriggerIndex

__all__ = ["TriggerRunner"]

log = logging.getLogger(__name__)

Call = Callable[[str, Any, float], Awaitable[Any]]


class TriggerRunner:
    """A bounded queue of (event, matching triggers) and the tasks that work it off.

    Args:
        call: invokes a function id with a payload and a timeout in seconds.
        triggers: the registry to match events against.
        timeout: seconds a condition or handler may take.
        queue_size: events that may wait for their triggers before writers are slowed down.
        concurrency: trigger invocations that may run at once.
        metrics: told of every trigger run and whether it failed.
    """

    def __init__(self, call: Call, triggers: TriggerIndex, *, timeout: float,
                 queue_size: int = 10_000, concurrency: int = 16, metrics: Metrics = NULL_METRICS) -> None:
        self._call = call
        self._metrics = metrics
        self._triggers = triggers
        self._timeout = timeout
        self._queue: asyncio.Queue[tuple[dict[str, Any], list[Trigger]]] = asyncio.Queue(queue_size)
        self._concurrency = concurrency
        self._tasks: list[asyncio.Task[None]] = []
        self.failures = 0  # handler or condition errors, for tests and metrics

    @property
    def queue_depth(self) -> int:
        """Events waiting for their triggers to run."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the worker tasks."""
        self._tasks = [asyncio.create_task(self._work(), name=f"triggers-{i}") for i in range(self._concurrency)]

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Let queued invocations finish (bounded by ``drain_timeout``), then stop."""
        try:
            await asyncio.wait_for(self._queue.join(), drain_timeout)
        except TimeoutError:
            log.warning("stopping with %d trigger events not run", self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, event: StreamEvent) -> None:
        """Queue the triggers ``event`` matches; waits only if the queue is full."""
        matching = self._triggers.for_event(event)
        if matching:
            await self._queue.put((event.to_wire(), matching))

    async def _work(self) -> None:
        while True:
            payload, triggers = await self._queue.get()
            try:
                for trigger in triggers:
                    await self._run(trigger, payload)
            finally:
                self._queue.task_done()

    async def _run(self, trigger: Trigger, payload: dict[str, Any]) -> None:
        try:
            if trigger.condition_function_id is not None:
                verdict = await self._call(trigger.condition_function_id, payload, self._timeout)
                if verdict is False:
                    return
            await self._call(trigger.function_id, payload, self._timeout)
            self._metrics.trigger_ran(trigger.type, True)
        except Exception as exc:
            self.failures += 1
            self._metrics.trigger_ran(trigger.type, False)
            log.warning("trigger %s (%s -> %s) failed: %s", trigger.id, trigger.type, trigger.function_id, exc)
