"""Calls in flight to workers: one future per invocation id, resolved by the worker's result.

Every call ends: with the worker's result or error, with ``InvocationTimeout`` after its timeout, or with
``InvocationStopped`` when the worker disconnects. A late result for a finished call is dropped.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from streamhub.engine.functions import NO_RESULT, WorkerLink
from streamhub.errors import InvocationError, InvocationStopped, InvocationTimeout
from streamhub.protocol.worker_messages import UNSET, InvocationResult, InvokeFunction

__all__ = ["Invocations"]


class Invocations:
    """The pending-invocation table."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[asyncio.Future[Any], WorkerLink]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    async def invoke(self, worker: WorkerLink, function_id: str, data: Any, timeout: float) -> Any:
        """Ask ``worker`` to run ``function_id`` and wait for the answer.

        Returns:
            The result, or ``NO_RESULT`` if the worker answered without one.

        Raises:
            InvocationError: the handler failed (its code is kept); ``InvocationTimeout``; ``InvocationStopped``.
        """
        invocation_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = (future, worker)
        try:
            worker.send(InvokeFunction(function_id=function_id, data=data, invocation_id=invocation_id))
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise InvocationTimeout(
                f"Function {function_id} did not answer within {timeout:g} s") from None
        finally:
            self._pending.pop(invocation_id, None)

    def notify(self, worker: WorkerLink, message: InvocationResult) -> None:
        """Complete the call that ``message`` answers; ignores unknown or foreign ids."""
        entry = self._pending.get(message.invocation_id)
        if entry is None or entry[1] is not worker or entry[0].done():
            return
        future = entry[0]
        if message.error is not None:
            future.set_exception(_error_from_wire(message.error))
        else:
            future.set_result(NO_RESULT if message.result is UNSET else message.result)

    def fail(self, worker: WorkerLink, invocation_id: str, error: InvocationError) -> bool:
        """Fail the call ``invocation_id`` in flight to ``worker`` (its answer was unusable); False if none is."""
        entry = self._pending.get(invocation_id)
        if entry is None or entry[1] is not worker or entry[0].done():
            return False
        entry[0].set_exception(error)
        return True

    def in_flight(self, worker: WorkerLink) -> int:
        """How many calls ``worker`` is running for the engine right now."""
        return sum(owner is worker for _, owner in self._pending.values())

    def stop_worker(self, worker: WorkerLink) -> int:
        """Fail every call in flight to a disconnected worker; returns how many."""
        stopped = 0
        for future, owner in list(self._pending.values()):
            if owner is worker and not future.done():
                future.set_exception(InvocationStopped("Invocation stopped: the worker disconnected"))
                stopped += 1
        return stopped


def _error_from_wire(error: Any) -> InvocationError:
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return InvocationError(str(message) if message is not None else "invocation failed",
                               code=str(code) if code else None)
    return InvocationError(str(error))
