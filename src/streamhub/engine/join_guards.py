"""Join guards: the ``stream_join`` triggers that decide whether a client may subscribe. They fail closed.

The client controls the join input, so a guard that cannot give a verdict must not let the join through: a
handler that raises, answers something that is not a verdict, runs past ``join_timeout_ms``, or whose function
nothing serves (unregistered, or its worker left; the guard itself stays, see ``core.triggers``) refuses the join
with a reason the client can read (``protocol.client_messages``: ``guard_failed``, ``guard_timeout``,
``guard_unavailable``) and one WARNING line. A handler refuses on purpose (``refused``) with an object whose
``unauthorized`` is anything but absent or ``false``; it admits with such an object, ``true``, ``null`` or no
result (join triggers that only observe joins return nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streamhub.core.triggers import JOIN, Trigger, TriggerIndex
from streamhub.engine.functions import NO_RESULT
from streamhub.errors import FunctionNotFound, InvocationStopped, InvocationTimeout, StreamhubError
from streamhub.protocol.client_messages import GUARD_FAILED, GUARD_TIMEOUT, GUARD_UNAVAILABLE, REFUSED

__all__ = ["JoinGuards", "failure_reason", "verdict"]

log = logging.getLogger(__name__)

Call = Callable[[str, Any, float], Awaitable[Any]]


def verdict(answer: Any) -> str | None:
    """What a guard's answer means: None admits, ``refused`` refuses, ``guard_failed`` is not a verdict."""
    if answer is NO_RESULT or answer is None or answer is True:
        return None
    if isinstance(answer, dict):
        flag = answer.get("unauthorized", False)
        return None if flag is False else REFUSED
    return GUARD_FAILED


def failure_reason(exc: Exception) -> str:
    """The refusal reason for a guard call that raised."""
    if isinstance(exc, InvocationTimeout):
        return GUARD_TIMEOUT
    if isinstance(exc, FunctionNotFound | InvocationStopped):
        return GUARD_UNAVAILABLE
    return GUARD_FAILED


class JoinGuards:
    """Asks every join trigger that covers a subscription, and says whether (and why) the join is refused."""

    def __init__(self, triggers: TriggerIndex, call: Call, timeout: float) -> None:
        self._triggers = triggers
        self._call = call
        self._timeout = timeout

    async def refusal(self, stream: str, group: str, payload: dict[str, Any]) -> str | None:
        """The reason the join of ``stream/group`` is refused, or None to admit it.

        Every covering guard is asked (each may record the join); the first refusal's reason wins.
        """
        reason: str | None = None
        for guard in self._triggers.for_subscription(JOIN, stream, group):
            refused = await self._ask(guard, stream, group, payload)
            if reason is None:
                reason = refused
        return reason

    async def _ask(self, guard: Trigger, stream: str, group: str, payload: dict[str, Any]) -> str | None:
        try:
            answer = await self._call(guard.function_id, payload, self._timeout)
        except Exception as exc:
            failed = failure_reason(exc)
            detail = exc.message if isinstance(exc, StreamhubError) else type(exc).__name__
            _warn(guard, stream, group, failed, detail)
            return failed
        reason = verdict(answer)
        if reason == GUARD_FAILED:
            _warn(guard, stream, group, reason, f"answered a {type(answer).__name__}, not a verdict object")
        elif reason == REFUSED:
            log.debug("join of %r/%r refused by %s", stream, group, guard.function_id)
        return reason


def _warn(guard: Trigger, stream: str, group: str, reason: str, detail: str) -> None:
    """One line naming the guard and the group; never the join's context (it may hold a token)."""
    log.warning("join of %r/%r refused (%s): join trigger %s (function %s): %.300s", stream, group, reason,
                guard.id, guard.function_id, detail)
