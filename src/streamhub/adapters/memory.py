"""The embedded store held in process memory (``store_method: in_memory``), and the base of the durable one.

Every write is applied synchronously (no ``await`` between reading the old value and storing the new one), so
writes are atomic per item without locks. ``_commit`` is the hook where a durable subclass makes the write
survive a crash before it is acknowledged and its event delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamhub.adapters.base import EventListener, GapListener, StreamAdapter
from streamhub.core.model import CREATE, DELETE, UPDATE, Change, ItemRef, StreamEvent
from streamhub.core.update_ops import UpdateOp, apply_ops

__all__ = ["MemoryAdapter", "Record"]

GroupKey = tuple[str, str]
Record = tuple[str, str, str, str, Any]
"""A journal entry: (``"set"`` | ``"del"``, stream, group, item, value)."""


class MemoryAdapter:
    """Items in dicts keyed by ``(stream, group)``; events go straight to the listener."""

    def __init__(self) -> None:
        # (stream, group) -> {item_id: value}, in first-creation order; empty groups are removed.
        self._groups: dict[GroupKey, dict[str, Any]] = {}
        self._listener: EventListener | None = None

    # Lifecycle

    async def start(self, listener: EventListener, on_gap: GapListener | None = None) -> None:
        """Begin delivering events; an embedded store never loses one, so ``on_gap`` is never called."""
        self._listener = listener

    async def close(self) -> None:
        self._listener = None

    # Reads

    async def get(self, ref: ItemRef) -> tuple[bool, Any]:
        return self._read(ref)

    async def list_items(self, stream: str, group: str) -> list[Any]:
        return list(self._groups.get((stream, group), {}).values())

    async def list_groups(self, stream: str) -> list[str]:
        return [group for (name, group) in self._groups if name == stream]

    async def list_all(self) -> dict[str, list[str]]:
        streams: dict[str, list[str]] = {}
        for stream, group in self._groups:
            streams.setdefault(stream, []).append(group)
        return {stream: sorted(groups) for stream, groups in sorted(streams.items())}

    # Writes

    async def set(self, ref: ItemRef, value: Any) -> Change:
        existed, old = self._store(ref, value)
        return await self._acknowledge(("set", ref.stream, ref.group, ref.item, value),
                                       Change(existed, old, value, _event(ref, UPDATE if existed else CREATE, value)))

    async def update(self, ref: ItemRef, ops: Sequence[UpdateOp]) -> Change:
        existed, old = self._read(ref)
        new = apply_ops(old if existed else {}, existed, ops)  # raises before anything is stored
        self._store(ref, new)
        return await self._acknowledge(("set", ref.stream, ref.group, ref.item, new),
                                       Change(existed, old, new, _event(ref, UPDATE if existed else CREATE, new)))

    async def delete(self, ref: ItemRef) -> Change:
        items = self._groups.get((ref.stream, ref.group))
        if items is None or ref.item not in items:
            return Change(False, None, None, None)
        old = items.pop(ref.item)
        if not items:
            del self._groups[(ref.stream, ref.group)]
        return await self._acknowledge(("del", ref.stream, ref.group, ref.item, None),
                                       Change(True, old, None, _event(ref, DELETE, old)))

    async def send(self, event: StreamEvent) -> None:
        self._emit(event)

    async def watch(self, stream: str, group: str) -> None:
        """Embedded stores deliver every event already."""

    async def unwatch(self, stream: str, group: str) -> None:
        """Embedded stores deliver every event already."""

    # Hooks for the durable subclass

    async def _commit(self, record: Record) -> None:
        """Make ``record`` durable before the write is acknowledged; nothing to do in memory."""

    def _load(self, record: Record) -> None:
        """Apply a journal record without emitting anything (used when replaying a journal)."""
        op, stream, group, item, value = record
        ref = ItemRef(stream, group, item)
        if op == "set":
            self._store(ref, value)
        else:
            items = self._groups.get((stream, group))
            if items is not None:
                items.pop(item, None)
                if not items:
                    del self._groups[(stream, group)]

    # Private

    def _read(self, ref: ItemRef) -> tuple[bool, Any]:
        items = self._groups.get((ref.stream, ref.group))
        if items is None or ref.item not in items:
            return False, None
        return True, items[ref.item]

    def _store(self, ref: ItemRef, value: Any) -> tuple[bool, Any]:
        items = self._groups.setdefault((ref.stream, ref.group), {})
        existed = ref.item in items
        old = items.get(ref.item)
        items[ref.item] = value
        return existed, old

    async def _acknowledge(self, record: Record, change: Change) -> Change:
        await self._commit(record)
        if change.event is not None:
            self._emit(change.event)
        return change

    def _emit(self, event: StreamEvent) -> None:
        if self._listener is not None:
            self._listener(event)


def _event(ref: ItemRef, kind: str, data: Any) -> StreamEvent:
    return StreamEvent(ref.stream, ref.group, ref.item, kind, data)


_check: type[StreamAdapter] = MemoryAdapter
