"""Trigger registrations and which of them an event or a subscription matches. Pure: no I/O.

Trigger types answer in both spellings: ``stream:join``/``stream_join``, ``stream:leave``/``stream_leave``.
Join/leave triggers honour ``stream_name``/``group_id`` in their config; the reference ignores it (docs/protocol.md,
Design decisions: *Both spellings*, *Join and leave triggers honour their config*).

Join triggers are guards, so they fail closed: when the worker that registered one disconnects the guard stays
(``orphaned``, owner ``None``) and keeps covering its joins, which the engine then refuses because nothing serves
its function, until a worker serves that function again. Only an explicit unregister removes a guard. A guard
registered again with the same function and filters (a worker that reconnects under a new trigger id) replaces
its orphan, so guards do not pile up.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any, Final

from streamhub.core.http_routes import RouteTable, parse_route
from streamhub.core.model import StreamEvent
from streamhub.errors import InvalidRequest

__all__ = ["BUILTIN_TYPES", "HTTP", "JOIN", "LEAVE", "RESERVED_TYPES", "STREAM", "Trigger", "TriggerIndex",
           "canonical_type"]

STREAM: Final = "stream"
JOIN: Final = "stream:join"
LEAVE: Final = "stream:leave"
HTTP: Final = "http"

_ALIASES = {"stream_join": JOIN, "stream_leave": LEAVE}
BUILTIN_TYPES: Final = frozenset({STREAM, JOIN, LEAVE, HTTP})
RESERVED_TYPES: Final = BUILTIN_TYPES | frozenset(_ALIASES)  # no worker may define a trigger type of these names


def canonical_type(trigger_type: str) -> str:
    """Map a documented alias to the reference id (``stream_join`` -> ``stream:join``)."""
    return _ALIASES.get(trigger_type, trigger_type)


@dataclass(frozen=True, slots=True)
class Trigger:
    """A registered trigger: when its filter matches, ``function_id`` is invoked."""

    id: str
    type: str
    function_id: str
    owner: Hashable  # None: an orphaned join guard (its worker left; see the module docstring)
    stream_name: str | None = None
    group_id: str | None = None
    item_id: str | None = None
    condition_function_id: str | None = None
    config: Any = None

    def matches(self, stream: str, group: str, item: str | None) -> bool:
        """True if this trigger's stream/group/item filter admits the address (empty filters admit all)."""
        if self.stream_name and self.stream_name != stream:
            return False
        if self.group_id and self.group_id != group:
            return False
        return not self.item_id or self.item_id == item


class TriggerIndex:
    """Triggers of the builtin types, looked up by event or subscription."""

    def __init__(self) -> None:
        self._by_id: dict[str, Trigger] = {}
        self.routes = RouteTable()  # the ``http`` triggers, matched by the REST API module
        self.on_change: Callable[[], None] | None = None  # the cluster announces this engine's triggers again

    def add(self, trigger_id: str, trigger_type: str, function_id: str, config: Any, owner: Hashable) -> Trigger:
        """Validate and store a trigger (replacing one with the same id).

        Raises:
            InvalidRequest: the config is missing a required field or has a field of the wrong type.
        """
        kind = canonical_type(trigger_type)
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise InvalidRequest(f"trigger {trigger_id}: config must be an object")
        trigger = Trigger(
            id=trigger_id,
            type=kind,
            function_id=function_id,
            owner=owner,
            stream_name=_optional_str(config, "stream_name", trigger_id, required=kind == STREAM),
            group_id=_optional_str(config, "group_id", trigger_id),
            item_id=_optional_str(config, "item_id", trigger_id),
            condition_function_id=_optional_str(config, "condition_function_id", trigger_id),
            config=config,
        )
        if kind == HTTP:
            self.routes.add(parse_route(trigger_id, function_id, config))
        if kind == JOIN:
            self._replace_orphans(trigger)
        self._by_id[trigger_id] = trigger
        self._changed()
        return trigger

    def remove(self, trigger_id: str) -> Trigger | None:
        """Forget a trigger; returns it if it existed."""
        self.routes.remove(trigger_id)
        removed = self._by_id.pop(trigger_id, None)
        if removed is not None:
            self._changed()
        return removed

    def get(self, trigger_id: str) -> Trigger | None:
        """The trigger registered under ``trigger_id``, if any."""
        return self._by_id.get(trigger_id)

    def all(self) -> list[Trigger]:
        """Every trigger (a copy)."""
        return list(self._by_id.values())

    def drop_owner(self, owner: Hashable) -> tuple[list[Trigger], list[Trigger]]:
        """Forget the triggers of ``owner`` (a disconnected worker), except its join guards, which stay in force.

        Returns:
            The triggers removed, and the join guards kept (now orphaned: owner ``None``).
        """
        mine = [t for t in self._by_id.values() if t.owner == owner]
        kept = [replace(t, owner=None) for t in mine if t.type == JOIN]
        for trigger in mine:
            if trigger.type != JOIN:
                self.remove(trigger.id)
        for guard in kept:
            self._by_id[guard.id] = guard
        if kept:
            self._changed()
        return [t for t in mine if t.type != JOIN], kept

    def of_type(self, kind: str) -> list[Trigger]:
        """Every trigger of one type."""
        return [t for t in self._by_id.values() if t.type == kind]

    def for_event(self, event: StreamEvent) -> list[Trigger]:
        """``stream`` triggers that match ``event``."""
        return [t for t in self._by_id.values()
                if t.type == STREAM and t.matches(event.stream, event.group, event.item)]

    def for_subscription(self, kind: str, stream: str, group: str) -> list[Trigger]:
        """Join or leave triggers that match a subscription to ``stream/group``."""
        return [t for t in self._by_id.values() if t.type == kind and t.matches(stream, group, None)]

    def _replace_orphans(self, guard: Trigger) -> None:
        """Drop orphaned join guards that ``guard`` covers exactly (same function and filters)."""
        same = [t.id for t in self._by_id.values()
                if t.type == JOIN and t.owner is None and t.id != guard.id and t.function_id == guard.function_id
                and (t.stream_name, t.group_id) == (guard.stream_name, guard.group_id)]
        for trigger_id in same:
            del self._by_id[trigger_id]


    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def _optional_str(config: dict[str, Any], key: str, trigger_id: str, *, required: bool = False) -> str | None:
    value = config.get(key)
    if value is None:
        if required:
            raise InvalidRequest(f"trigger {trigger_id}: config.{key} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"trigger {trigger_id}: config.{key} must be a string")
    return value
