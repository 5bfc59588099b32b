"""The one interface between the engine and a storage backend.

Contract every adapter keeps (the shared suite in ``tests/adapters`` checks it against each one):

* ``set``/``update``/``delete`` return a ``Change`` carrying the exact old value, taken atomically with the
  write: two concurrent writers to one item never both see the same old value.
* ``update`` applies all ops or none (``UpdateOpError`` leaves the item untouched and emits nothing).
* A returned write is acknowledged: with a durable backend it survives a crash of the process.
* Each write's event (``Change.event``) and each ``send`` event reach the listener given to ``start`` exactly
  once per engine that watches the group, in the order the writes were applied to that group.
  Embedded adapters deliver every event; distributed ones only events of groups passed to ``watch``.
* A distributed adapter that may have lost events of a watched group (its connection to the bus broke) calls
  the ``on_gap`` callback given to ``start`` once it delivers that group's events again; the engine then sends
  every subscriber of the group a fresh snapshot. Embedded adapters never lose events and never call it.
* ``list`` returns values in first-creation order where the backend keeps one.
* Names are stored literally: any printable character, ``:`` and ``*`` included, never breaks the layout.
* Positions: every change of a group (set/update/delete/send) is numbered with the group's next offset, as part of
  the same atomic step that stores it, and its event carries that offset. Events reach the listener in offset order
  and each is kept in a bounded per-group change log. ``snapshot`` returns state and the position it reflects as one
  consistent read; ``replay`` returns every logged event after a position, or None when it cannot vouch for all of
  them (other epoch, trimmed log, a hole): never a partial history. An adapter that loses its history (restart
  without the log, wiped data) answers with a new epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from streamhub.core.model import AnyEvent, Change, ItemRef, StreamEvent
from streamhub.core.positions import Position
from streamhub.core.update_ops import UpdateOp

__all__ = ["EventListener", "GapListener", "StreamAdapter"]

EventListener = Callable[[AnyEvent], None]
"""Called synchronously with each event, in commit order; must not block. Distributed adapters may hand over an
``EncodedEvent`` (the JSON as published, decoded only if read), embedded ones the ``StreamEvent`` itself."""

GapListener = Callable[[str, str], None]
"""Called synchronously with ``(stream, group)`` whose events may have been lost, before any later event of it."""


class StreamAdapter(Protocol):
    """Storage plus event bus for stream items."""

    async def start(self, listener: EventListener, on_gap: GapListener | None = None) -> None:
        """Open the backend and begin delivering events to ``listener`` (gaps reported to ``on_gap``)."""

    async def close(self) -> None:
        """Flush what is acknowledged and release every resource."""

    async def get(self, ref: ItemRef) -> tuple[bool, Any]:
        """Return ``(exists, value)``; a stored JSON null is ``(True, None)``."""

    async def set(self, ref: ItemRef, value: Any) -> Change:
        """Store ``value``; the event is ``create`` if the item was missing, else ``update``."""

    async def delete(self, ref: ItemRef) -> Change:
        """Remove the item; deleting a missing item succeeds with ``event=None``."""

    async def update(self, ref: ItemRef, ops: Sequence[UpdateOp]) -> Change:
        """Apply ``ops`` atomically (missing item starts as ``{}``). Raises ``UpdateOpError``."""

    async def list_items(self, stream: str, group: str) -> list[Any]:
        """Return the values of every item of the group (``[]`` for an unknown group)."""

    async def list_groups(self, stream: str) -> list[str]:
        """Return the ids of the groups of ``stream`` that hold at least one item."""

    async def list_all(self) -> dict[str, list[str]]:
        """Return every stream name mapped to its sorted group ids."""

    async def send(self, event: StreamEvent) -> StreamEvent:
        """Deliver a custom event to the group's subscribers without storing it; returns it with its offset."""

    async def snapshot(self, stream: str, group: str, item: str | None) -> tuple[Any, Position]:
        """Return the group's values (``item`` None) or the item's value (None if missing), and their position."""

    async def replay(self, stream: str, group: str, since: Position) -> tuple[list[StreamEvent], Position] | None:
        """Return every event after ``since`` in offset order and the position they lead to, or None."""

    async def watch(self, stream: str, group: str) -> None:
        """Start delivering events of this group to this engine (a no-op for embedded adapters)."""

    async def unwatch(self, stream: str, group: str) -> None:
        """Stop delivering events of this group once no local subscriber needs them."""
