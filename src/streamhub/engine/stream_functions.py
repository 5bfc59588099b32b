"""The builtin stream functions (``stream.set`` ... ``stream.send``), registered under both spellings.

Each function validates its input (naming the wrong field), calls the adapter, and reports the change's event to
``on_change`` so triggers run off the write path. Results follow the reference shapes (README, *Stream functions*).
This is where values enter the stores, so every value is checked here, once (``core.values``): the adapters rely on
it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from streamhub.adapters.base import StreamAdapter
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.model import CUSTOM, Change, ItemRef, StreamEvent
from streamhub.core.names import validate_name
from streamhub.core.update_ops import parse_ops
from streamhub.core.values import DEFAULT_MAX_DEPTH, check_ops, check_value
from streamhub.engine.functions import NO_RESULT, Builtin
from streamhub.engine.presence import Presence
from streamhub.errors import InvalidRequest

__all__ = ["DESCRIPTIONS", "StreamFunctions"]

DESERIALIZATION_ERROR = "deserialization_error"

DESCRIPTIONS: Final = {  # what engine::functions::list says about each
    "stream::set": "Store an item's value and tell the group's subscribers",
    "stream::get": "Read one item's value",
    "stream::delete": "Remove an item and tell the group's subscribers",
    "stream::update": "Apply update ops to an item, all or nothing",
    "stream::list": "Read every item of a group",
    "stream::list_groups": "List the groups of a stream",
    "stream::list_all": "List every stream with its groups",
    "stream::send": "Send a custom event to a group's subscribers (not stored)",
    "stream::presence": "List who is in a group (one member per client connection), every engine included",
    "stream::presence_count": "Count who is in a group, every engine included",
}


class StreamFunctions:
    """Binds the stream functions to one adapter.

    Args:
        adapter: where items live.
        on_change: awaited with every event a call produced (after the adapter acknowledged it).
        max_value_depth: nesting limit of stored and sent values (``max_value_depth`` of the stream module).
        metrics: told of every event written, by type.
    """

    def __init__(self, adapter: StreamAdapter, on_change: Callable[[StreamEvent], Awaitable[None]], *,
                 max_value_depth: int = DEFAULT_MAX_DEPTH, metrics: Metrics = NULL_METRICS,
                 presence: Presence | None = None) -> None:
        self._adapter = adapter
        self._presence = presence
        self._on_change = on_change
        self._max_depth = max_value_depth
        self._metrics = metrics

    def builtins(self) -> dict[str, Builtin]:
        """Every function under its ``stream::NAME`` and ``stream.NAME`` ids."""
        table: dict[str, Builtin] = {
            "set": self.set,
            "get": self.get,
            "delete": self.delete,
            "update": self.update,
            "list": self.list,
            "list_groups": self.list_groups,
            "list_all": self.list_all,
            "send": self.send,
        }
        if self._presence is not None:
            table["presence"] = self.presence
            table["presence_count"] = self.presence_count
        ids: dict[str, Builtin] = {}
        for name, handler in table.items():
            ids[f"stream::{name}"] = handler
            ids[f"stream.{name}"] = handler
        return ids

    # Functions

    async def set(self, data: Any) -> Any:
        payload = _object(data, "set")
        value = _required(payload, "data", "set")
        ref = _item_ref(payload)
        check_value(value, "stream.set: data", self._max_depth)
        change = await self._adapter.set(ref, value)
        await self._report(change)
        return {"old_value": change.old, "new_value": change.new}

    async def get(self, data: Any) -> Any:
        exists, value = await self._adapter.get(_item_ref(_object(data, "get")))
        return value if exists else NO_RESULT

    async def delete(self, data: Any) -> Any:
        change = await self._adapter.delete(_item_ref(_object(data, "delete")))
        await self._report(change)
        return {"old_value": change.old}

    async def update(self, data: Any) -> Any:
        payload = _object(data, "update")
        ref = _item_ref(payload)
        ops = parse_ops(_required(payload, "ops", "update"))
        check_ops(ops, "stream.update", self._max_depth)
        change = await self._adapter.update(ref, ops)
        await self._report(change)
        return {"old_value": change.old, "new_value": change.new}

    async def list(self, data: Any) -> Any:
        payload = _object(data, "list")
        return await self._adapter.list_items(_name(payload, "stream_name"), _name(payload, "group_id"))

    async def list_groups(self, data: Any) -> Any:
        return await self._adapter.list_groups(_name(_object(data, "list_groups"), "stream_name"))

    async def list_all(self, data: Any) -> Any:
        _object(data, "list_all")
        streams = await self._adapter.list_all()
        return {"stream": [{"id": name, "groups": groups} for name, groups in streams.items()],
                "count": len(streams)}

    async def send(self, data: Any) -> Any:
        payload = _object(data, "send")
        custom_type = payload.get("type", payload.get("event_type"))
        if not isinstance(custom_type, str) or not custom_type:
            raise InvalidRequest("stream.send: type (or event_type) must be a non-empty string",
                                 code=DESERIALIZATION_ERROR)
        item = payload.get("id")
        if item is not None:
            validate_name("id", item)
        event = StreamEvent(_name(payload, "stream_name"), _name(payload, "group_id"), item, CUSTOM,
                            payload.get("data"), custom_type)
        check_value(event.data, "stream.send: data", self._max_depth)
        sent = await self._adapter.send(event)
        self._metrics.event_written(CUSTOM)
        await self._on_change(sent)
        return None

    async def presence(self, data: Any) -> Any:
        payload = _object(data, "presence")
        assert self._presence is not None
        roster = await self._presence.roster(_name(payload, "stream_name"), _name(payload, "group_id"))
        answer: dict[str, Any] = {"members": [member.to_wire() for member in roster.members], "count": roster.count}
        if roster.truncated:
            answer["truncated"] = True
        return answer

    async def presence_count(self, data: Any) -> Any:
        payload = _object(data, "presence_count")
        assert self._presence is not None
        return {"count": await self._presence.count(_name(payload, "stream_name"), _name(payload, "group_id"))}

    # Private

    async def _report(self, change: Change) -> None:
        if change.event is not None:
            self._metrics.event_written(change.event.kind)
            await self._on_change(change.event)


def _object(data: Any, function: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise InvalidRequest(f"stream.{function}: input must be an object, got {kind}", code=DESERIALIZATION_ERROR)
    return data


def _required(payload: dict[str, Any], key: str, function: str) -> Any:
    if key not in payload:
        raise InvalidRequest(f"stream.{function}: missing field {key}", code=DESERIALIZATION_ERROR)
    return payload[key]


def _name(payload: dict[str, Any], key: str) -> str:
    return validate_name(key, payload.get(key))


def _item_ref(payload: dict[str, Any]) -> ItemRef:
    return ItemRef(_name(payload, "stream_name"), _name(payload, "group_id"), _name(payload, "item_id"))
