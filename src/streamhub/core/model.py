"""Items, changes and the events they cause.

An event is built once, by the engine that applied the change, and then travels unchanged to every
subscriber and trigger: ``StreamEvent.to_wire()`` is the client protocol's wrapper (camelCase, ms timestamp).
An event that arrives from another process as that wrapper's JSON (Redis pub/sub) stays an ``EncodedEvent``: its
bytes go into the subscribers' frame as they came, and it is decoded only if something reads its content.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

__all__ = [
    "CREATE",
    "CUSTOM",
    "DELETE",
    "UPDATE",
    "AnyEvent",
    "Change",
    "EncodedEvent",
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

    def to_json(self) -> bytes:
        """``to_wire()`` as JSON (what subscribers' frames carry)."""
        return orjson.dumps(self.to_wire())

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


class EncodedEvent:
    """A ``StreamEvent`` received as its ``to_wire()`` JSON: group and offset known, the rest decoded on first use.

    Fan-out needs nothing else (``Hub.dispatch`` frames ``to_json()`` as is), so an event crossing engines through
    Redis is never parsed and re-encoded on its way to the subscribers. Equal to the ``StreamEvent`` it encodes.
    """

    __slots__ = ("_decoded", "group", "offset", "stream", "wire")

    def __init__(self, stream: str, group: str, offset: int, wire: bytes) -> None:
        self.stream = stream
        self.group = group
        self.offset = offset
        self.wire = wire
        self._decoded: StreamEvent | None = None

    def to_json(self) -> bytes:
        """The JSON as received."""
        return self.wire

    def decoded(self) -> StreamEvent:
        """The event itself, decoded once (raises ``ValueError``/``KeyError`` if the JSON is not an event)."""
        if self._decoded is None:
            self._decoded = StreamEvent.from_wire(orjson.loads(self.wire))
        return self._decoded

    def to_wire(self) -> dict[str, Any]:
        return self.decoded().to_wire()

    @property
    def item(self) -> str | None:
        return self.decoded().item

    @property
    def kind(self) -> str:
        return self.decoded().kind

    @property
    def data(self) -> Any:
        return self.decoded().data

    @property
    def custom_type(self) -> str | None:
        return self.decoded().custom_type

    @property
    def timestamp(self) -> int:
        return self.decoded().timestamp

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncodedEvent):
            other = other.decoded()
        return self.decoded() == other if isinstance(other, StreamEvent) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a StreamEvent, which is unhashable too

    def __repr__(self) -> str:
        return f"EncodedEvent({self.wire!r})"


AnyEvent = StreamEvent | EncodedEvent
"""What adapters hand their listener: the event itself, or its JSON as another process published it."""


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of a write: whether the item existed, its old and new values, and the event it caused.

    ``event`` is None when nothing changed (deleting a missing item).
    """

    existed: bool
    old: Any
    new: Any
    event: StreamEvent | None
