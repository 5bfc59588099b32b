"""The functions and triggers a client keeps registered, across reconnects.

The engine forgets a worker's registrations when its connection drops, so the client remembers them and sends
them again on every connect. Each one can be awaited: it settles once the engine has processed it (a ``ping``
sent after it came back), with ``RegistrationError`` if the engine refused it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Callable, Generator, Mapping
from typing import Any

from streamhub.errors import InvalidRequest, StreamhubError
from streamhub.protocol.worker_messages import (
    RegisterFunction,
    RegisterTrigger,
    TriggerRegistrationResult,
    WorkerMessage,
)
from streamhub.sdk.errors import RegistrationError
from streamhub.sdk.events import wrap_payload

__all__ = ["Confirmations", "FunctionEntry", "Handler", "Registration", "Registry", "TriggerEntry"]

log = logging.getLogger(__name__)

Handler = Callable[..., Any]


class Registration:
    """A function or trigger of this client. ``await`` it to wait until the engine accepted it.

    Raises (when awaited):
        RegistrationError: the engine refused it (the message says why).
    """

    def __init__(self, registration_id: str, message: WorkerMessage, on_unregister: Callable[[Registration], None]):
        self.id = registration_id
        self.message = message
        self.generation = 0  # link generation it was last sent on
        self._on_unregister = on_unregister
        self._settled = asyncio.Event()
        self._error: StreamhubError | None = None
        self.active = True

    def __await__(self) -> Generator[Any, None, Registration]:
        return self._wait().__await__()

    def settle(self, error: StreamhubError | None) -> None:
        """Record the engine's verdict (first one wins)."""
        if self._settled.is_set():
            return
        self._error = error
        self._settled.set()
        if error is not None:
            log.error("%s", error.message)

    def unregister(self) -> None:
        """Remove it from the engine (if connected) and stop registering it again on reconnect."""
        if self.active:
            self.active = False
            self._on_unregister(self)

    async def _wait(self) -> Registration:
        await self._settled.wait()
        if self._error is not None:
            raise self._error
        return self


class FunctionEntry(Registration):
    """A function id served by a local handler ``handler(event, context)`` or ``handler(event)``."""

    def __init__(self, function_id: str, handler: Handler, message: RegisterFunction,
                 on_unregister: Callable[[Registration], None]) -> None:
        super().__init__(function_id, message, on_unregister)
        self.handler = handler
        self.wants_context = _arity(function_id, handler) >= 2

    async def run(self, data: Any) -> Any:
        """Call the handler with the event view of ``data`` (and the auth context, if it takes two)."""
        event = wrap_payload(data)
        if self.wants_context:
            context = data.get("context") if isinstance(data, dict) else None
            result = self.handler(event, context)
        else:
            result = self.handler(event)
        if inspect.isawaitable(result):
            result = await result
        return result


class TriggerEntry(Registration):
    """A trigger (``stream``, ``stream_join``, ``stream_leave``, ``http``, ...) bound to a function id."""

    message: RegisterTrigger


class Registry:
    """Every registration of one client, in the order they were made."""

    def __init__(self, on_unregister: Callable[[Registration], None]) -> None:
        self.functions: dict[str, FunctionEntry] = {}
        self.triggers: dict[str, TriggerEntry] = {}
        self._on_unregister = on_unregister

    def add_function(self, function_id: str, handler: Handler, *, description: str | None = None,
                     metadata: Any = None) -> FunctionEntry:
        """Remember a function.

        Raises:
            InvalidRequest: empty id, or this client already serves that id.
            TypeError: ``handler`` is not callable with one or two positional arguments.
        """
        _require_name("function id", function_id)
        if function_id in self.functions:
            raise InvalidRequest(f"function {function_id} is already registered by this client")
        message = RegisterFunction(id=function_id, description=description, metadata=metadata)
        entry = FunctionEntry(function_id, handler, message, self._on_unregister)
        self.functions[function_id] = entry
        return entry

    def add_trigger(self, trigger_type: str, function_id: str, config: Mapping[str, Any] | None,
                    trigger_id: str | None = None) -> TriggerEntry:
        """Remember a trigger.

        Raises:
            InvalidRequest: empty type or function id, or a config that is not an object.
        """
        _require_name("trigger type", trigger_type)
        _require_name("trigger function_id", function_id)
        if config is not None and not isinstance(config, Mapping):
            raise InvalidRequest(f"trigger {trigger_type} -> {function_id}: config must be an object, "
                                 f"got {type(config).__name__}")
        trigger_id = trigger_id or str(uuid.uuid4())
        message = RegisterTrigger(id=trigger_id, trigger_type=trigger_type, function_id=function_id,
                                  config=dict(config) if config is not None else None)
        entry = TriggerEntry(trigger_id, message, self._on_unregister)
        self.triggers[trigger_id] = entry
        return entry

    def remove(self, entry: Registration) -> None:
        """Forget a registration."""
        if isinstance(entry, FunctionEntry):
            self.functions.pop(entry.id, None)
        else:
            self.triggers.pop(entry.id, None)

    def unsent(self, generation: int) -> list[Registration]:
        """Registrations not yet sent on connection ``generation``: functions first, then triggers."""
        entries: list[Registration] = [*self.functions.values(), *self.triggers.values()]
        return [entry for entry in entries if entry.generation != generation]


class Confirmations:
    """Settles registrations: after sending some, the client pings; the engine handles a connection's frames in
    order, so any ``triggerregistrationresult`` refusing one of them arrives before the ``pong``."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._waiting: deque[list[Registration]] = deque()  # one entry per ping in flight
        self._refused: dict[str, RegistrationError] = {}

    def expect(self, covered: list[Registration]) -> None:
        """A ping covering ``covered`` is about to be sent."""
        self._waiting.append(covered)

    def refused(self, message: TriggerRegistrationResult) -> None:
        """Remember a refusal until the pong that settles it."""
        if message.error is None:
            return
        reason = message.error.get("message") if isinstance(message.error, dict) else message.error
        self._refused[message.id] = RegistrationError(
            f"trigger {message.trigger_type} -> {message.function_id} refused by the engine: {reason}")

    def pong(self) -> None:
        """Settle the registrations of the oldest ping; refused ones are forgotten (they would fail again)."""
        if not self._waiting:
            return
        for entry in self._waiting.popleft():
            refusal = self._refused.pop(entry.id, None)
            if refusal is not None:
                entry.active = False
                self._registry.remove(entry)
            entry.settle(refusal)

    def reset(self) -> None:
        """The connection dropped: unanswered pings never will be (registrations are sent again)."""
        self._waiting.clear()
        self._refused.clear()


def _require_name(what: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{what} must be a non-empty string, got {value!r}")


def _arity(function_id: str, handler: Handler) -> int:
    """How many positional arguments to pass: 2 (event, context) or 1 (event)."""
    if not callable(handler):
        raise TypeError(f"handler of {function_id} must be callable, got {type(handler).__name__}")
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return 1
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    positional = [p for p in params
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise TypeError(f"handler of {function_id} must accept the event as its first argument")
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if len(required) > 2:
        raise TypeError(f"handler of {function_id} takes {len(required)} required arguments; "
                        "expected handler(event) or handler(event, context)")
    return 2 if len(positional) >= 2 else 1
