"""Errors the SDK raises. All are ``StreamhubError``s: a stable ``code`` and a message saying what and where.

Hierarchy::

    CallError               the engine (or the function's handler) answered a call with an error
    ├── CallTimeout         no answer within the call's timeout (a late answer is dropped)
    ├── NotConnected        the call could not be sent: no connection within its timeout (safe to retry)
    └── ConnectionLost      the connection dropped after the call was sent: it may or may not have run
    RegistrationError       the engine refused a trigger registration
    SubscriptionError       a subscription was refused (join trigger, auth) or could not be opened
    ConnectError            the first connection to the engine could not be made
"""

from __future__ import annotations

from typing import Any

from streamhub.errors import StreamhubError

__all__ = [
    "CallError",
    "CallTimeout",
    "ConnectError",
    "ConnectionLost",
    "NotConnected",
    "RegistrationError",
    "SubscriptionError",
]


class CallError(StreamhubError):
    """A call failed; ``code`` and ``message`` are the engine's (or the handler's) own.

    Args:
        function_id: the function that was called.
        error: the wire error body ``{"code", "message", ...}``; kept as ``details``.
    """

    code = "invocation_failed"

    def __init__(self, function_id: str, message: str, *, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{function_id}: {message}", code=code)
        self.function_id = function_id
        self.reason = message
        self.details = details or {}

    @classmethod
    def from_wire(cls, function_id: str, error: Any) -> CallError:
        """Build from an ``invocationresult.error`` (an object, or anything else the peer sent)."""
        if isinstance(error, dict):
            message = error.get("message")
            code = error.get("code")
            return cls(function_id, str(message) if message is not None else "call failed",
                       code=str(code) if code else None, details=error)
        return cls(function_id, str(error))


class CallTimeout(CallError):
    """No answer within the timeout; the function may still be running."""

    code = "timeout"


class NotConnected(CallError):
    """The call was never sent because no connection came up in time."""

    code = "not_connected"


class ConnectionLost(CallError):
    """The connection dropped while the call was in flight; it is not retried (it may have run)."""

    code = "connection_lost"


class RegistrationError(StreamhubError):
    """The engine refused to register a trigger (unknown type, bad config)."""

    code = "trigger_registration_failed"


class SubscriptionError(StreamhubError):
    """A subscription was refused or failed; ``code`` is ``unauthorized`` for a refusal.

    ``reason`` says why the engine refused a join (the ``unauthorized`` event's ``reason``): ``refused`` (a join
    trigger said no), or ``guard_failed`` / ``guard_timeout`` / ``guard_unavailable`` (no join trigger could
    judge it; retrying later may succeed). None for other failures, and for engines that send no reason.
    """

    code = "subscription_failed"

    def __init__(self, message: str, *, code: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, code=code)
        self.reason = reason


class ConnectError(StreamhubError):
    """No connection to the engine could be made within the connect timeout."""

    code = "connect_failed"
