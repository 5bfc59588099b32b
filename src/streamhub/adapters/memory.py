"""The embedded store held in process memory (``store_method: in_memory``), and the base of the durable one.

Every write is applied and numbered synchronously (no ``await`` between reading the old value, storing the new
one and taking the group's next offset), so writes are atomic per item without locks and offsets follow the
apply order. Two hooks serve a durable subclass: ``_prepare`` turns the write's journal record into what it will
persist (encoding it) *before* anything changes, so a record that cannot be encoded refuses that write alone, with
memory untouched and no offset taken; ``_commit`` then makes the prepared record survive a crash before the write
is acknowledged; the event is then logged and delivered. The change log lives in memory only, so each adapter
instance (each process) has its own epoch: after a restart clients resume with a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from streamhub.adapters.base import EventListener, GapListener, StreamAdapter
from streamhub.core.model import CREATE, DELETE, UPDATE, Change, ItemRef, StreamEvent
from streamhub.core.positions import ChangeLog, LogLimits, Position, new_epoch
from streamhub.core.update_ops import UpdateOp, apply_ops

__all__ = ["MemoryAdapter", "Record"]

GroupKey = tuple[str, str]
_MIN_SWEEP_INTERVAL = 0.05  # seconds; the sweep runs every half change-log age, never more often than this
Record = tuple[str, str, str, str, Any]
"""A journal entry: (``"set"`` | ``"del"``, stream, group, item, value)."""


class _History:
    """A group's offsets: the last one given to a change, the last one delivered, and the recent events."""

    __slots__ = ("assigned", "log", "published")

    def __init__(self, limits: LogLimits) -> None:
        self.assigned = 0
        self.published = 0
        self.log = ChangeLog(limits)


class MemoryAdapter:
    """Items in dicts keyed by ``(stream, group)``; events go straight to the listener.

    Args:
        limits: how much change history each group keeps for resuming clients.
    """

    def __init__(self, limits: LogLimits | None = None) -> None:
        # (stream, group) -> {item_id: value}, in first-creation order; empty groups are removed.
        self._groups: dict[GroupKey, dict[str, Any]] = {}
        self._listener: EventListener | None = None
        self._limits = limits or LogLimits()
        self._histories: dict[GroupKey, _History] = {}
        self._sweeper: asyncio.Task[None] | None = None  # expires the logs of groups nobody writes any more
        self.epoch = new_epoch()

    # Lifecycle

    async def start(self, listener: EventListener, on_gap: GapListener | None = None) -> None:
        """Begin delivering events; an embedded store never loses one, so ``on_gap`` is never called."""
        self._listener = listener
        self._sweeper = asyncio.create_task(self._sweep(), name="streamhub-change-log-sweeper")

    async def health(self) -> str | None:
        """Why the store cannot take writes now, or None (readiness probe): memory can while started."""
        return None if self._listener is not None else "the in-memory store is not started"

    async def close(self) -> None:
        self._listener = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

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
        prepared = self._prepare(("set", ref.stream, ref.group, ref.item, value))  # raises before anything changes
        existed, old = self._store(ref, value)
        return await self._stored(ref, existed, old, value, prepared)

    async def update(self, ref: ItemRef, ops: Sequence[UpdateOp]) -> Change:
        existed, old = self._read(ref)
        new = apply_ops(old if existed else {}, existed, ops)  # raises before anything is stored
        prepared = self._prepare(("set", ref.stream, ref.group, ref.item, new))
        self._store(ref, new)
        return await self._stored(ref, existed, old, new, prepared)

    async def delete(self, ref: ItemRef) -> Change:
        items = self._groups.get((ref.stream, ref.group))
        if items is None or ref.item not in items:
            return Change(False, None, None, None)
        prepared = self._prepare(("del", ref.stream, ref.group, ref.item, None))
        old = items.pop(ref.item)
        if not items:
            del self._groups[(ref.stream, ref.group)]
        return await self._acknowledge(prepared, Change(True, old, None, self._event(ref, DELETE, old)))

    async def send(self, event: StreamEvent) -> StreamEvent:
        numbered = replace(event, offset=self._next_offset(event.stream, event.group))
        self._emit(numbered)
        return numbered

    # Positions

    async def snapshot(self, stream: str, group: str, item: str | None) -> tuple[Any, Position]:
        items = self._groups.get((stream, group), {})
        state = list(items.values()) if item is None else items.get(item)
        history = self._histories.get((stream, group))
        return state, Position(self.epoch, history.assigned if history else 0)

    async def replay(self, stream: str, group: str, since: Position) -> tuple[list[StreamEvent], Position] | None:
        if since.epoch != self.epoch:
            return None
        history = self._histories.get((stream, group)) or _History(self._limits)
        if history.published < since.offset <= history.assigned:
            return [], since  # the client's snapshot is ahead of delivery; the rest arrives live
        events = history.log.since(since.offset, history.published)
        if events is None:
            return None
        return events, Position(self.epoch, history.published)

    async def watch(self, stream: str, group: str) -> None:
        """Embedded stores deliver every event already."""

    async def unwatch(self, stream: str, group: str) -> None:
        """Embedded stores deliver every event already."""

    # Hooks for the durable subclass

    def _prepare(self, record: Record) -> Any:
        """Return what ``_commit`` will persist for ``record``; called before the write changes anything or takes
        an offset, so raising here (``AdapterError``) refuses this write alone. Memory keeps nothing."""
        return None

    async def _commit(self, prepared: Any) -> None:
        """Make the prepared record durable before the write is acknowledged; nothing to do in memory."""

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

    async def _stored(self, ref: ItemRef, existed: bool, old: Any, new: Any, prepared: Any) -> Change:
        event = self._event(ref, UPDATE if existed else CREATE, new)
        return await self._acknowledge(prepared, Change(existed, old, new, event))

    async def _acknowledge(self, prepared: Any, change: Change) -> Change:
        await self._commit(prepared)
        if change.event is not None:
            self._emit(change.event)
        return change

    async def _sweep(self) -> None:
        """Trim every change log by age now and then: a log is otherwise trimmed only when its group is written."""
        while True:
            await asyncio.sleep(max(self._limits.age / 2, _MIN_SWEEP_INTERVAL))
            for history in list(self._histories.values()):
                history.log.expire()
                await asyncio.sleep(0)  # many groups: let the loop breathe between them

    def _event(self, ref: ItemRef, kind: str, data: Any) -> StreamEvent:
        return StreamEvent(ref.stream, ref.group, ref.item, kind, data, offset=self._next_offset(ref.stream, ref.group))

    def _next_offset(self, stream: str, group: str) -> int:
        history = self._histories.get((stream, group))
        if history is None:
            history = self._histories[(stream, group)] = _History(self._limits)
        history.assigned += 1
        return history.assigned

    def _emit(self, event: StreamEvent) -> None:
        history = self._histories.get((event.stream, event.group))
        if history is not None and event.offset:
            history.log.append(event)
            history.published = event.offset
        if self._listener is not None:
            self._listener(event)


_check: type[StreamAdapter] = MemoryAdapter
