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
    "PresenceQuery",
    "PresenceRequest",
    "ResumeFrom",
    "SubscriptionData",
    "error_frame",
    "presence_answer",
    "presence_event",
    "presence_sync_wrapper",
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
    presence: bool = False  # streamhub extension: also send this subscription the group's presence events


class Join(msgspec.Struct, frozen=True, tag="join", tag_field="type"):
    """Subscribe: the engine answers with a ``sync`` snapshot, then live events."""

    data: SubscriptionData


class Leave(msgspec.Struct, frozen=True, tag="leave", tag_field="type"):
    """Unsubscribe: nothing is sent back."""

    data: SubscriptionData


class PresenceQuery(msgspec.Struct, frozen=True):
    """Which group's members a ``presence`` request asks for; ``requestId`` is echoed in the answer."""

    requestId: str
    streamName: str
    groupId: str


class PresenceRequest(msgspec.Struct, frozen=True, tag="presence", tag_field="type"):
    """Ask who is in a group without subscribing (streamhub extension): answered by a ``presence`` frame."""

    data: PresenceQuery


ClientMessage = Join | Leave | PresenceRequest


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


def error_frame(error: StreamhubError, subscription_id: str | None = None, request_id: str | None = None
                ) -> dict[str, Any]:
    """streamhub's answer to a frame it cannot use; the connection stays open.

    A join that failed names its subscription, so the client knows which one to retry; a failed presence request
    names its ``requestId``.
    """
    frame: dict[str, Any] = {"type": "error", "error": error.to_wire()}
    if subscription_id is not None:
        frame["subscriptionId"] = subscription_id
    if request_id is not None:
        frame["requestId"] = request_id
    return frame


def presence_sync_wrapper(sub: SubscriptionData, members: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """The presence ``sync`` a presence subscription gets after its join's ``sync``: who is there now."""
    event: dict[str, Any] = {"type": "presence", "action": "sync", "members": members, "count": count}
    if len(members) < count:
        event["truncated"] = True
    wrapper = _wrapper(sub, event)
    wrapper["id"] = None
    return wrapper


def presence_event(stream: str, group: str, action: str, member: dict[str, Any]) -> dict[str, Any]:
    """A member joined or left: the same frame for every presence subscription of the group (no offset)."""
    return {"type": "stream", "timestamp": now_ms(), "streamName": stream, "groupId": group, "id": None,
            "event": {"type": "presence", "action": action, "member": member}}


def presence_answer(query: PresenceQuery, members: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """The answer to a ``presence`` request."""
    answer: dict[str, Any] = {"type": "presence", "requestId": query.requestId, "streamName": query.streamName,
                              "groupId": query.groupId, "members": members, "count": count}
    if len(members) < count:
        answer["truncated"] = True
    return answer


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
