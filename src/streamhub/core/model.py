"""Items, changes and the events they cause.

An event is built once, by the engine that applied the change, and then travels unchanged to every
subscriber and trigger: ``StreamEvent.to_wire()`` is the client protocol's wrapper (camelCase, ms timestamp).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CREATE",
    "CUSTOM",
    "DELETE",
    "UPDATE",
    "Change",
    "ItemRef",
    "StreamEvent",
    "now_ms",
]

CREATE: Final = "create"
UPDATE: Final = "update"
DELETE: Final = "delete"
CUSTOM: Final = "event"


def now_ms() -> int:
    """Unix time in milliseconds, the timestamp unit of the wire protocol."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ItemRef:
    """The address of one item: ``stream/group/item``."""

    stream: str
    group: str
    item: str


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Something subscribers of ``stream/group`` must hear about.

    ``kind`` is ``create``/``update``/``delete`` (``data`` = new value, or old value for delete) or ``event``
    for a custom ``stream.send`` (``custom_type`` names it). ``item`` is None for group-wide custom events.
    ``offset`` is the change's position in its group (0 for an event built before the adapter numbered it).
    """

    stream: str
    group: str
    item: str | None
    kind: str
    data: Any
    custom_type: str | None = None
    timestamp: int = field(default_factory=now_ms)
    offset: int = 0

    def to_wire(self) -> dict[str, Any]:
        """Return the wrapper sent to WebSocket clients and to ``stream`` triggers."""
        if self.kind == CUSTOM:
            inner: dict[str, Any] = {"type": CUSTOM, "event": {"type": self.custom_type, "data": self.data}}
        else:
            inner = {"type": self.kind, "data": self.data}
        return {
            "type": "stream",
            "timestamp": self.timestamp,
            "streamName": self.stream,
            "groupId": self.group,
            "id": self.item,
            "event": inner,
            "offset": self.offset,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> StreamEvent:
        """Rebuild an event from ``to_wire()`` output (used by adapters that ship events between engines)."""
        inner = wire["event"]
        if inner["type"] == CUSTOM:
            custom = inner["event"]
            return cls(wire["streamName"], wire["groupId"], wire["id"], CUSTOM, custom["data"],
                       custom["type"], wire["timestamp"], wire.get("offset", 0))
        return cls(wire["streamName"], wire["groupId"], wire["id"], inner["type"], inner.get("data"),
                   None, wire["timestamp"], wire.get("offset", 0))


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of a write: whether the item existed, its old and new values, and the event it caused.

    ``event`` is None when nothing changed (deleting a missing item).
    """

    existed: bool
    old: Any
    new: Any
    event: StreamEvent | None
