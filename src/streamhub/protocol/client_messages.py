"""Frames of the client WebSocket protocol (stream port), as typed values.

Field names are the wire's (camelCase), so decoding, validation and "which field is wrong" come from one
definition. Extra fields are ignored, as in the reference.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from streamhub.core.model import now_ms
from streamhub.core.positions import Position
from streamhub.errors import StreamhubError

__all__ = [
    "GUARD_FAILED",
    "GUARD_TIMEOUT",
    "GUARD_UNAVAILABLE",
    "REFUSED",
    "UNAUTHORIZED_REASONS",
    "ClientMessage",
    "Join",
    "Leave",
    "ResumeFrom",
    "SubscriptionData",
    "error_frame",
    "recovered_wrapper",
    "sync_wrapper",
    "unauthorized_wrapper",
]


# Why a join was refused: the ``reason`` of an ``unauthorized`` event (streamhub extension). Join guards fail closed.
REFUSED: Final = "refused"  # a join trigger answered ``unauthorized`` (anything but absent or false)
GUARD_FAILED: Final = "guard_failed"  # a join trigger raised, or answered something that is not a verdict
GUARD_TIMEOUT: Final = "guard_timeout"  # a join trigger did not answer within join_timeout_ms
GUARD_UNAVAILABLE: Final = "guard_unavailable"  # nothing serves the join trigger's function (worker gone)
UNAUTHORIZED_REASONS: Final = frozenset({REFUSED, GUARD_FAILED, GUARD_TIMEOUT, GUARD_UNAVAILABLE})


class ResumeFrom(msgspec.Struct, frozen=True):
    """The last position a client saw (streamhub extension): resume from there if the log allows."""

    epoch: str
    offset: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # what every store can hold


class SubscriptionData(msgspec.Struct, frozen=True):
    """Which group (``id`` None) or item a join/leave is about, under the client's subscription id."""

    subscriptionId: str
    streamName: str
    groupId: str
    id: str | None = None
    position: ResumeFrom | None = None


class Join(msgspec.Struct, frozen=True, tag="join", tag_field="type"):
    """Subscribe: the engine answers with a ``sync`` snapshot, then live events."""

    data: SubscriptionData


class Leave(msgspec.Struct, frozen=True, tag="leave", tag_field="type"):
    """Unsubscribe: nothing is sent back."""

    data: SubscriptionData


ClientMessage = Join | Leave


def sync_wrapper(sub: SubscriptionData, snapshot: Any, position: Position) -> dict[str, Any]:
    """The first frame of a fresh subscription: the current value (item) or values (group) and their position."""
    wrapper = _wrapper(sub, {"type": "sync", "data": snapshot})
    wrapper["position"] = position.to_wire()
    wrapper["recovered"] = False
    return wrapper


def recovered_wrapper(sub: SubscriptionData, position: Position) -> dict[str, Any]:
    """The first frame of a resumed subscription: no snapshot; the missed events follow, up to ``position``."""
    wrapper = _wrapper(sub, {"type": "sync"})
    wrapper["position"] = position.to_wire()
    wrapper["recovered"] = True
    return wrapper


def unauthorized_wrapper(sub: SubscriptionData, reason: str) -> dict[str, Any]:
    """Answer to a join that a join trigger refused, or that no join trigger could judge (``reason``)."""
    return _wrapper(sub, {"type": "unauthorized", "reason": reason})


def error_frame(error: StreamhubError, subscription_id: str | None = None) -> dict[str, Any]:
    """streamhub's answer to a frame it cannot use; the connection stays open.

    A join that failed names its subscription, so the client knows which one to retry.
    """
    frame: dict[str, Any] = {"type": "error", "error": error.to_wire()}
    if subscription_id is not None:
        frame["subscriptionId"] = subscription_id
    return frame


def _wrapper(sub: SubscriptionData, event: dict[str, Any]) -> dict[str, Any]:
    """An answer to one join; it echoes the ``subscriptionId`` so overlapping subscriptions can tell theirs."""
    return {
        "type": "stream",
        "timestamp": now_ms(),
        "streamName": sub.streamName,
        "groupId": sub.groupId,
        "id": sub.id,
        "event": event,
        "subscriptionId": sub.subscriptionId,
    }
