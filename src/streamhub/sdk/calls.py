"""Calls this client made and is waiting on: one future per invocation id.

A call ends with the engine's answer, ``CallTimeout``, or ``ConnectionLost`` when the connection it was sent on
drops. A call still waiting to be sent is not failed by a disconnect: it goes out on the next connection.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from streamhub.protocol.worker_messages import UNSET, InvocationResult
from streamhub.sdk.errors import CallError, ConnectionLost

__all__ = ["PendingCall", "PendingCalls"]


class PendingCall:
    """One call in flight; ``generation`` is the connection it was sent on (None until sent)."""

    __slots__ = ("function_id", "future", "generation", "invocation_id")

    def __init__(self, function_id: str) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_id = function_id
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.generation: int | None = None


class PendingCalls:
    """The invocation-id table of one client."""

    def __init__(self) -> None:
        self._calls: dict[str, PendingCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def open(self, function_id: str) -> PendingCall:
        """Start tracking a call (before it is sent, so an early answer finds it)."""
        call = PendingCall(function_id)
        self._calls[call.invocation_id] = call
        return call

    def discard(self, call: PendingCall) -> None:
        """Stop tracking a finished call; a late answer is then dropped."""
        self._calls.pop(call.invocation_id, None)

    def resolve(self, message: InvocationResult) -> None:
        """Complete the call ``message`` answers (unknown or finished ids are ignored)."""
        call = self._calls.get(message.invocation_id)
        if call is None or call.future.done():
            return
        if message.error is not None:
            call.future.set_exception(CallError.from_wire(call.function_id, message.error))
        else:
            call.future.set_result(None if message.result is UNSET else message.result)

    def lost(self, generation: int, url: str) -> int:
        """Fail every call sent on connection ``generation``; returns how many."""
        failed = 0
        for call in self._calls.values():
            if call.generation == generation and not call.future.done():
                call.future.set_exception(ConnectionLost(
                    call.function_id, f"connection to {url} lost while the call was in flight; "
                    "it may or may not have run, so it is not retried"))
                failed += 1
        return failed
