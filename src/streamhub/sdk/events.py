"""Event objects handed to subscription callbacks and trigger handlers.

The wire wrapper is ``{"type": "stream", "streamName", "groupId", "id", "timestamp", "event": {"type": "create",
"data": ...}}``; the published documentation reads the same event as ``event.event.create.data``,
``event.event_type`` and ``event.data`` (docs/protocol.md, Design decisions, *Both event shapes in the clients*).
These classes are plain ``dict`` subclasses holding the wire fields unchanged (so they compare equal to the wire
dict and serialize with any JSON library), and add read-only attributes for the documentation's shape. Unknown wire
fields (``position``, ``recovered``, ``subscriptionId``, ...) are kept and readable as ``event["position"]`` or
``event.position``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Change", "CustomEvent", "EventBody", "Record", "StreamEvent", "wrap_payload"]

_CUSTOM = "event"


class Record(dict[str, Any]):
    """A JSON object whose keys also read as attributes (``payload.connection_id``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None


class Change:
    """``event.event.create`` in the documentation's shape: holds ``data``."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Change(data={self.data!r})"


class CustomEvent(Record):
    """The inner ``{"type": name, "data": ...}`` of a ``stream.send`` event; ``event_type`` is ``name``."""

    __slots__ = ()

    @property
    def type(self) -> str | None:
        return self.get("type")

    @property
    def event_type(self) -> str | None:
        return self.get("type", self.get("event_type"))

    @property
    def data(self) -> Any:
        return self.get("data")


class EventBody(Record):
    """The wrapper's ``event``: ``{"type": "create"|"update"|"delete"|"sync"|"event"|"unauthorized", ...}``.

    ``body.create`` / ``body.update`` / ``body.delete`` / ``body.sync`` is a ``Change`` when the body is of that
    type, else None; ``body.event`` is the ``CustomEvent`` of a ``stream.send``. ``update`` is an attribute here,
    so the ``dict.update`` method is not available on this read-only view.
    """

    __slots__ = ()

    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__(raw)
        custom = raw.get(_CUSTOM)
        if self.get("type") == _CUSTOM and isinstance(custom, dict):
            self[_CUSTOM] = CustomEvent(custom)

    @property
    def type(self) -> str | None:
        return self.get("type")

    @property
    def data(self) -> Any:
        """The item value (create/update/sync), the old value (delete), or the custom event's data."""
        custom = self.event
        return custom.data if custom is not None else self.get("data")

    @property
    def create(self) -> Change | None:
        return self._change("create")

    # The documented shape wins over dict.update on this read-only view.
    @property
    def update(self) -> Change | None:  # type: ignore[override]
        return self._change("update")

    @property
    def delete(self) -> Change | None:
        return self._change("delete")

    @property
    def sync(self) -> Change | None:
        return self._change("sync")

    @property
    def event(self) -> CustomEvent | None:
        custom = self.get(_CUSTOM)
        return custom if isinstance(custom, CustomEvent) else None

    def _change(self, kind: str) -> Change | None:
        return Change(self.get("data")) if self.get("type") == kind else None


class StreamEvent(Record):
    """One frame of a subscription, or the payload of a ``stream`` trigger.

    Wire fields by key (``event["streamName"]``); documentation fields by attribute: ``stream_name``,
    ``group_id``, ``id``, ``timestamp``, ``event_type`` (``create``/``update``/``delete``/``sync``/``event``/
    ``unauthorized``), ``data`` and ``event`` (an ``EventBody``). ``replayed`` is True for an event the engine
    sent again after a reconnect because the subscription had missed it (not a wire field).
    """

    __slots__ = ("replayed",)

    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__(raw)
        self.replayed = False
        body = raw.get("event")
        self["event"] = EventBody(body if isinstance(body, dict) else {})

    @property
    def type(self) -> str | None:
        return self.get("type")

    @property
    def stream_name(self) -> str | None:
        return self.get("streamName")

    @property
    def group_id(self) -> str | None:
        return self.get("groupId")

    @property
    def id(self) -> str | None:
        return self.get("id")

    @property
    def timestamp(self) -> int | None:
        return self.get("timestamp")

    @property
    def event(self) -> EventBody:
        body: EventBody = self["event"]
        return body

    @property
    def event_type(self) -> str | None:
        return self.event.type

    @property
    def data(self) -> Any:
        return self.event.data


def wrap_payload(data: Any) -> Any:
    """Give a function's input the attribute view: stream wrappers become ``StreamEvent``, other objects ``Record``.

    Anything that is not a JSON object is returned unchanged.
    """
    if not isinstance(data, dict):
        return data
    if data.get("type") == "stream" and isinstance(data.get("event"), dict) and "streamName" in data:
        return StreamEvent(data)
    return Record(data)
