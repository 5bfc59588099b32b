"""The engine's own trigger types: ``engine::functions-available`` and ``engine::workers-available``.

A worker binds a function to them with an ordinary ``registertrigger``; the binding lives as long as that
worker's connection (or until unregistered by id). What they fire with, as in iii:

- ``engine::functions-available``: ``{"event": "functions_changed", "functions": [...]}`` (every function,
  engine builtins included, as ``engine::functions::list`` rows) whenever the set of function ids changed.
  iii polls for that every 5 s; streamhub looks ``delay`` seconds after a registration or removal, which also
  folds a worker's burst of registrations into one call.
- ``engine::workers-available``: ``{"event": "worker_connected" | "worker_metadata_updated" |
  "worker_disconnected", "worker_id": ...}`` when a worker connects, describes itself
  (``engine::workers::register``) or leaves.

Each bound function is called on its own task; a failure is logged and never reaches the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from streamhub.engine.functions import WorkerLink
from streamhub.errors import StreamhubError
from streamhub.protocol.worker_messages import RegisterTrigger

__all__ = ["ENGINE_TYPES", "FUNCTIONS_AVAILABLE", "WORKERS_AVAILABLE", "EngineBinding", "EngineEvents"]

log = logging.getLogger(__name__)

FUNCTIONS_AVAILABLE: Final = "engine::functions-available"
WORKERS_AVAILABLE: Final = "engine::workers-available"
ENGINE_TYPES: Final = {
    FUNCTIONS_AVAILABLE: "Fires when functions are registered or unregistered",
    WORKERS_AVAILABLE: "Fires when workers connect, describe themselves or disconnect",
}

Call = Callable[[str, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class EngineBinding:
    """A worker's trigger of one of the engine's types."""

    message: RegisterTrigger
    owner: WorkerLink


class EngineEvents:
    """Bindings to the engine's trigger types, and the calls that fire them.

    Args:
        call: invokes a function id with a payload.
        functions: the current ``engine::functions::list`` rows (all of them), for ``functions-available``.
        delay: seconds between a change of the function set and the look that fires ``functions-available``.
    """

    def __init__(self, call: Call, functions: Callable[[], list[dict[str, Any]]], *, delay: float = 0.25) -> None:
        self._call = call
        self._functions = functions
        self._delay = delay
        self._bindings: dict[str, EngineBinding] = {}
        self._last_ids: list[str] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task[None]] = set()

    def bindings(self) -> list[EngineBinding]:
        """Every live binding to an engine type."""
        return list(self._bindings.values())

    def bind(self, worker: WorkerLink, message: RegisterTrigger) -> None:
        """Keep a binding (replacing one with the same id)."""
        self._bindings[message.id] = EngineBinding(message, worker)

    def unbind(self, trigger_id: str) -> bool:
        """Forget a binding; False if there was none."""
        return self._bindings.pop(trigger_id, None) is not None

    def worker_left(self, worker: WorkerLink) -> int:
        """Forget a departed worker's bindings; returns how many."""
        mine = [trigger_id for trigger_id, b in self._bindings.items() if b.owner is worker]
        for trigger_id in mine:
            del self._bindings[trigger_id]
        return len(mine)

    def start(self) -> None:
        """Take the function set the engine starts with as the one already announced."""
        self._last_ids = [row["function_id"] for row in self._functions()]

    def functions_changed(self) -> None:
        """The function set may have changed: look again after ``delay`` (one look per burst)."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving yet: nobody can be bound
            return
        self._timer = loop.call_later(self._delay, self._look)

    def worker_event(self, event: str, worker_id: str) -> None:
        """Fire ``engine::workers-available`` with ``event`` about ``worker_id``."""
        self._fire(WORKERS_AVAILABLE, {"event": event, "worker_id": worker_id})

    async def close(self) -> None:
        """Stop looking and end the calls in flight (an engine shutting down does not wait for event handlers)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._calls:
            task.cancel()
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

    def _look(self) -> None:
        self._timer = None
        rows = self._functions()
        ids = [row["function_id"] for row in rows]
        if ids == self._last_ids:
            return
        self._last_ids = ids
        self._fire(FUNCTIONS_AVAILABLE, {"event": "functions_changed", "functions": rows})

    def _fire(self, trigger_type: str, payload: dict[str, Any]) -> None:
        for binding in self._bindings.values():
            if binding.message.trigger_type == trigger_type:
                task = asyncio.create_task(self._deliver(binding.message, payload))
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)

    async def _deliver(self, message: RegisterTrigger, payload: dict[str, Any]) -> None:
        try:
            await self._call(message.function_id, payload)
        except StreamhubError as exc:
            log.warning("trigger %s (%s -> %s) failed: %s", message.id, message.trigger_type, message.function_id,
                        exc.message)
        except Exception:
            log.exception("trigger %s (%s -> %s) failed", message.id, message.trigger_type, message.function_id)
