"""Frames of the client WebSocket protocol (stream port), as typed values.

Field names are the wire's (camelCase), so decoding, validation and "which field is wrong" come from one
definition. Extra fields are ignored, as in the reference.
"""

from __future__ import annotations

from typing import Any

import msgspec

from streamhub.core.model import now_ms
from streamhub.errors import StreamhubError

__all__ = [
    "ClientMessage",
    "Join",
    "Leave",
    "SubscriptionData",
    "error_frame",
    "sync_wrapper",
    "unauthorized_wrapper",
]


class SubscriptionData(msgspec.Struct, frozen=True):
    """Which group (``id`` None) or item a join/leave is about, under the client's subscription id."""

    subscriptionId: str
    streamName: str
    groupId: str
    id: str | None = None


class Join(msgspec.Struct, frozen=True, tag="join", tag_field="type"):
    """Subscribe: the engine answers with a ``sync`` snapshot, then live events."""

    data: SubscriptionData


class Leave(msgspec.Struct, frozen=True, tag="leave", tag_field="type"):
    """Unsubscribe: nothing is sent back."""

    data: SubscriptionData


ClientMessage = Join | Leave


def sync_wrapper(sub: SubscriptionData, snapshot: Any) -> dict[str, Any]:
    """The first frame of a subscription: the current value (item) or values (group)."""
    return _wrapper(sub, {"type": "sync", "data": snapshot})


def unauthorized_wrapper(sub: SubscriptionData) -> dict[str, Any]:
    """Answer to a join that a join trigger refused."""
    return _wrapper(sub, {"type": "unauthorized"})


def error_frame(error: StreamhubError) -> dict[str, Any]:
    """streamhub's answer to a frame it cannot use; the connection stays open."""
    return {"type": "error", "error": error.to_wire()}


def _wrapper(sub: SubscriptionData, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "stream",
        "timestamp": now_ms(),
        "streamName": sub.streamName,
        "groupId": sub.groupId,
        "id": sub.id,
        "event": event,
    }
