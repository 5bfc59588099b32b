"""Where a subscription stands in its group's history, so a re-join resumes instead of silently skipping events.

The engine numbers every change of a group (``offset``) within one incarnation of its history (``epoch``); the
``sync`` answering a join carries the position it reflects. A ``Cursor`` keeps the last position handed to the
consumer, decides which frames reach it (nothing stale from before a join's ``sync``, no offset twice) and marks
the events an engine replays after a ``sync`` with ``recovered: true``. See docs/protocol.md, *Positions*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

from streamhub.sdk.events import StreamEvent

__all__ = ["Cursor", "Position"]


@dataclass(frozen=True, slots=True)
class Position:
    """The last change of a group a subscription has handed out: offsets compare only within one ``epoch``."""

    epoch: str
    offset: int

    @classmethod
    def from_wire(cls, value: Any) -> Position | None:
        """The ``{"epoch", "offset"}`` of a ``sync``, or None when absent or malformed (an engine without positions)."""
        if not isinstance(value, dict):
            return None
        epoch, offset = value.get("epoch"), value.get("offset")
        if not isinstance(epoch, str) or not _is_offset(offset):
            return None
        return cls(epoch, offset)

    def to_wire(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset}


class Cursor:
    """Filters one subscription's frames and tracks its position.

    ``live`` is False from a (re-)join until its ``sync``: frames in between belong to the previous join and the
    answer to this one accounts for them (by its snapshot, or by replaying them).
    """

    def __init__(self) -> None:
        self._epoch: str | None = None  # with ``_offset``: the position (kept apart: no object per event)
        self._offset = 0
        self.live = False
        self.last_sync: StreamEvent | None = None
        self._replayed_up_to = -1  # events up to this offset follow a recovered sync: the engine replays them

    @property
    def position(self) -> Position | None:
        """The last change handed out; None before a ``sync`` with a position."""
        return Position(self._epoch, self._offset) if self._epoch is not None else None

    def rejoining(self) -> dict[str, Any] | None:
        """A join is about to be sent: stop admitting frames until its ``sync``; the position to resume from."""
        self.live = False
        return {"epoch": self._epoch, "offset": self._offset} if self._epoch is not None else None

    def admit(self, event: StreamEvent) -> bool:
        """True if ``event`` goes to the consumer; updates the position and marks replayed events."""
        if event["event"].get("type") == "sync":
            return self._sync(event)
        if not self.live:
            return False
        offset = event.get("offset")
        if self._epoch is None or not _is_offset(offset):
            return True  # an engine without positions: nothing to order by
        if offset <= self._offset:
            return False  # already handed out
        self._offset = offset
        event.replayed = offset <= self._replayed_up_to
        return True

    def _sync(self, event: StreamEvent) -> bool:
        self.live = True
        self.last_sync = event
        reached = Position.from_wire(event.get("position"))
        if event.get("recovered") is True and reached is not None and reached.epoch == self._epoch:
            # No snapshot: the missed events follow; the consumer's state stays valid and they update it.
            self._replayed_up_to = reached.offset
            return False
        self._epoch, self._offset = (reached.epoch, reached.offset) if reached is not None else (None, 0)
        self._replayed_up_to = -1
        return True


def _is_offset(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
