"""What the engine does with each message a worker sends (registrations, calls, results).

One handler per message type, dispatched by message class. Calls run as tasks so a slow function never stalls
the worker's read loop; results go back as ``invocationresult``. Published iii SDKs announce themselves with a
fire-and-forget call of ``engine::workers::register``; that metadata is kept per worker (``descriptions``), next
to when and from where each worker connected (``connected_workers``), for the introspection builtins.

A ``registertrigger`` goes to the built-in trigger index (``stream``, ``stream:join``, ``stream:leave``,
``http``), to the engine's own types (``engine::functions-available``, ``engine::workers-available``), or else to
the worker-defined types (``trigger_types``), which hold it until a worker provides its type. The built-in and
engine trigger type names (``RESERVED``) cannot be registered by a worker: that would divert other workers' join
guards (or the engine's events) to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from streamhub.core.triggers import BUILTIN_TYPES, RESERVED_TYPES, TriggerIndex, canonical_type
from streamhub.engine.engine_events import ENGINE_TYPES, EngineEvents
from streamhub.engine.functions import NO_RESULT, FunctionMeta, FunctionRegistry, WorkerLink
from streamhub.engine.invocations import Invocations
from streamhub.engine.trigger_types import WorkerTriggerTypes
from streamhub.errors import StreamhubError
from streamhub.protocol.worker_messages import (
    UNSET,
    ErrorMessage,
    InvocationResult,
    InvokeFunction,
    Ping,
    Pong,
    RegisterFunction,
    RegisterTrigger,
    RegisterTriggerType,
    TriggerRegistrationResult,
    UnregisterFunction,
    UnregisterTrigger,
    UnregisterTriggerType,
    WorkerMessage,
)

__all__ = ["REGISTER_WORKER", "RESERVED", "WorkerHost", "WorkerRecord", "WorkerSessions"]

log = logging.getLogger(__name__)

REGISTER_WORKER = "engine::workers::register"
RESERVED: Final = RESERVED_TYPES | frozenset(ENGINE_TYPES)


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A connected worker: when (ms since the epoch) and from where (peer address, when known)."""

    worker: WorkerLink
    connected_at_ms: int
    ip_address: str | None = None


class WorkerHost(Protocol):
    """What worker messages act on: the registries, the calls in flight, the engine's events, a way to call.

    ``Engine`` provides it; naming only these keeps this module from importing the engine (no import cycle).
    """

    @property
    def functions(self) -> FunctionRegistry: ...

    @property
    def triggers(self) -> TriggerIndex: ...

    @property
    def invocations(self) -> Invocations: ...

    @property
    def trigger_types(self) -> WorkerTriggerTypes: ...

    @property
    def events(self) -> EngineEvents: ...

    async def call(self, function_id: str, data: Any, timeout: float | None = None) -> Any: ...


class WorkerSessions:
    """Applies worker messages to the engine and cleans up after a worker leaves."""

    def __init__(self, engine: WorkerHost) -> None:
        self._engine = engine
        self._calls: set[asyncio.Task[None]] = set()
        self.descriptions: dict[str, dict[str, Any]] = {}  # worker id -> what it said in engine::workers::register
        self.connected_workers: dict[str, WorkerRecord] = {}
        self._handlers: dict[type[Any], Callable[[WorkerLink, Any], None]] = {
            RegisterFunction: self._register_function,
            UnregisterFunction: self._unregister_function,
            RegisterTrigger: self._register_trigger,
            UnregisterTrigger: self._unregister_trigger,
            RegisterTriggerType: self._register_trigger_type,
            UnregisterTriggerType: self._unregister_trigger_type,
            InvokeFunction: self._invoke,
            InvocationResult: self._result,
            TriggerRegistrationResult: self._provider_answer,
            Ping: self._ping,
        }

    def connected(self, worker: WorkerLink, ip_address: str | None = None) -> None:
        """Record a new connection (before its first message) and fire ``engine::workers-available``."""
        self.connected_workers[worker.worker_id] = WorkerRecord(worker, int(time.time() * 1000), ip_address)
        self._engine.events.worker_event("worker_connected", worker.worker_id)

    def handle(self, worker: WorkerLink, message: WorkerMessage) -> None:
        """Apply one message; messages with no effect here (pong, reattach, services) are ignored."""
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(worker, message)

    def disconnected(self, worker: WorkerLink) -> None:
        """Forget a worker's functions, triggers (but not its join guards) and trigger types; fail its calls.

        Its bindings to worker-defined types are unregistered at their provider; bindings of other workers to
        the types it provided are held for the next provider.
        """
        engine = self._engine
        functions = engine.functions.drop_worker(worker)
        triggers, guards = engine.triggers.drop_owner(worker.worker_id)
        for guard in guards:
            log.warning("worker %s left: join guard %s (function %s) stays in force; the joins it covers are "
                        "refused until a worker serves %s again", worker.worker_id, guard.id, guard.function_id,
                        guard.function_id)
        types, bindings = engine.trigger_types.worker_left(worker)
        bindings += engine.events.worker_left(worker)
        stopped = engine.invocations.stop_worker(worker)
        self.descriptions.pop(worker.worker_id, None)
        self.connected_workers.pop(worker.worker_id, None)
        log.info("worker %s disconnected: %d functions removed (%s), %d triggers, %d trigger types removed, "
                 "%d calls stopped", worker.worker_id, len(functions), _names(functions), len(triggers) + bindings,
                 types, stopped)
        engine.events.worker_event("worker_disconnected", worker.worker_id)

    # Handlers

    def _register_function(self, worker: WorkerLink, message: RegisterFunction) -> None:
        meta = FunctionMeta(message.description, message.request_format, message.response_format, message.metadata)
        self._engine.functions.add_remote(message.id, worker, meta)
        log.info("worker %s registered function %s", worker.worker_id, message.id)

    def _unregister_function(self, worker: WorkerLink, message: UnregisterFunction) -> None:
        self._engine.functions.remove_remote(message.id, worker)

    def _register_trigger(self, worker: WorkerLink, message: RegisterTrigger) -> None:
        kind = canonical_type(message.trigger_type)
        if kind in ENGINE_TYPES:
            self._engine.events.bind(worker, message)
        elif kind not in BUILTIN_TYPES:
            self._engine.trigger_types.bind(worker, message)
        else:
            try:
                self._engine.triggers.add(message.id, kind, message.function_id, message.config, worker.worker_id)
            except StreamhubError as exc:
                self._reject(worker, message, exc.message)

    def _unregister_trigger(self, worker: WorkerLink, message: UnregisterTrigger) -> None:
        """By id, whoever registered it (as iii); a binding of a worker-defined type is dropped at its provider."""
        engine = self._engine
        if not engine.trigger_types.unbind(message.id) and not engine.events.unbind(message.id):
            engine.triggers.remove(message.id)

    def _register_trigger_type(self, worker: WorkerLink, message: RegisterTriggerType) -> None:
        if message.id in RESERVED:
            reason = f"trigger type {message.id} is built into streamhub and cannot be registered by a worker"
            log.warning("worker %s: %s", worker.worker_id, reason)
            worker.send(ErrorMessage(error={"code": "reserved_trigger_type", "message": reason}))
            return
        self._engine.trigger_types.provide(worker, message)

    def _unregister_trigger_type(self, worker: WorkerLink, message: UnregisterTriggerType) -> None:
        self._engine.trigger_types.withdraw(worker, message.id)

    def _provider_answer(self, worker: WorkerLink, message: TriggerRegistrationResult) -> None:
        self._engine.trigger_types.refused(worker, message)

    def _invoke(self, worker: WorkerLink, message: InvokeFunction) -> None:
        if message.function_id == REGISTER_WORKER:
            self._describe(worker, message)
            return
        task = asyncio.create_task(self._run_call(worker, message))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    def _result(self, worker: WorkerLink, message: InvocationResult) -> None:
        self._engine.invocations.notify(worker, message)

    def _ping(self, worker: WorkerLink, message: Ping) -> None:
        worker.send(Pong())

    def _describe(self, worker: WorkerLink, message: InvokeFunction) -> None:
        data = message.data if isinstance(message.data, dict) else {}
        self.descriptions[worker.worker_id] = data
        log.info("worker %s is %s (%s %s)", worker.worker_id, data.get("name"), data.get("runtime"),
                 data.get("version"))
        self._engine.events.worker_event("worker_metadata_updated", worker.worker_id)
        if message.invocation_id is not None and not _is_void(message.action):
            worker.send(_answer(message, result={"success": True}))

    # Private

    async def _run_call(self, worker: WorkerLink, message: InvokeFunction) -> None:
        if _is_enqueue(message.action):
            error = {"code": "enqueue_not_supported",
                     "message": f"streamhub has no queues: cannot enqueue {message.function_id}; call it directly"}
            if message.invocation_id is not None:
                worker.send(_answer(message, error=error))
            return
        data = message.data
        if isinstance(data, dict) and not self._engine.functions.is_builtin(message.function_id):
            data = {**data, "_caller_worker_id": worker.worker_id}
        wants_answer = message.invocation_id is not None and not _is_void(message.action)
        try:
            result = await self._engine.call(message.function_id, data)
        except StreamhubError as exc:
            if wants_answer:
                worker.send(_answer(message, error=exc.to_wire()))
            else:
                log.warning("fire-and-forget call of %s failed: %s", message.function_id, exc.message)
            return
        except Exception:
            log.exception("call of %s failed", message.function_id)
            if wants_answer:
                worker.send(_answer(message, error={"code": "invocation_error", "message": "internal error"}))
            return
        if wants_answer:
            worker.send(_answer(message, result=UNSET if result is NO_RESULT else result))

    def _reject(self, worker: WorkerLink, message: RegisterTrigger, reason: str) -> None:
        log.warning("trigger %s (%s) rejected: %s", message.id, message.trigger_type, reason)
        worker.send(TriggerRegistrationResult(
            id=message.id, trigger_type=message.trigger_type, function_id=message.function_id,
            error={"code": "trigger_registration_failed", "message": reason}))


def _names(function_ids: list[str], shown: int = 20) -> str:
    """The ids for a log line, cut after ``shown`` so a worker with thousands of functions stays one line."""
    more = f", ... {len(function_ids) - shown} more" if len(function_ids) > shown else ""
    return ", ".join(function_ids[:shown]) + more


def _answer(message: InvokeFunction, *, result: Any = UNSET, error: Any = None) -> InvocationResult:
    assert message.invocation_id is not None
    return InvocationResult(invocation_id=message.invocation_id, function_id=message.function_id,
                            result=result, error=error)


def _is_void(action: Any) -> bool:
    return isinstance(action, dict) and action.get("type") == "void"


def _is_enqueue(action: Any) -> bool:
    return isinstance(action, dict) and action.get("type") == "enqueue"
