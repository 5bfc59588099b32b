"""Stream positions: where a group's history stands, and the bounded log that lets clients resume.

Every change to a group (set, update, delete, send) gets the next offset of that group. An epoch names one
incarnation of the history: offsets are only comparable within an epoch, and a store that cannot vouch for its
history (wiped, restarted without its log, Redis data lost) starts a new one. A client that saw up to offset N
can resume if the epoch still matches and every change after N is still in the log; otherwise it needs a fresh
snapshot. A replay is all or nothing: ``ChangeLog.since`` never returns a partial history.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass

from streamhub.core.model import StreamEvent

__all__ = ["ChangeLog", "LogLimits", "Position", "missed_events", "new_epoch"]


def new_epoch() -> str:
    """A fresh, unique epoch name."""
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True, slots=True)
class Position:
    """The last change of a group a snapshot reflects (or a client has seen)."""

    epoch: str
    offset: int

    def to_wire(self) -> dict[str, object]:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class LogLimits:
    """How much history a group keeps: at most ``size`` events, none older than ``age`` seconds."""

    size: int = 1000
    age: float = 300.0


def missed_events(logged: list[StreamEvent], offset: int, last: int) -> list[StreamEvent] | None:
    """The events after ``offset`` up to ``last`` from a log in offset order, or None unless every one is there."""
    if offset == last:
        return []
    if offset > last or not logged or logged[0].offset > offset + 1:
        return None
    events = [event for event in logged if offset < event.offset <= last]
    if len(events) != last - offset or events[0].offset != offset + 1:
        return None  # a hole: some change was never logged (e.g. its write failed)
    return events


class ChangeLog:
    """The recent events of one group, in offset order, trimmed by size and age."""

    __slots__ = ("_entries", "_limits")

    def __init__(self, limits: LogLimits) -> None:
        self._limits = limits
        self._entries: deque[tuple[float, StreamEvent]] = deque()

    def append(self, event: StreamEvent, now: float | None = None) -> None:
        """Record ``event`` (offsets must arrive in increasing order)."""
        now = time.monotonic() if now is None else now
        self._entries.append((now, event))
        self._trim(now)

    def since(self, offset: int, last: int, now: float | None = None) -> list[StreamEvent] | None:
        """Every event after ``offset`` up to ``last``, or None if any of them is no longer (or never was) here.

        Args:
            offset: the last offset the client has.
            last: the group's last offset whose event has been published.
        """
        self._trim(time.monotonic() if now is None else now)
        return missed_events([event for _, event in self._entries], offset, last)

    def __len__(self) -> int:
        return len(self._entries)

    def expire(self, now: float | None = None) -> None:
        """Drop events older than the age limit (for logs of groups that are no longer written)."""
        self._trim(time.monotonic() if now is None else now)

    def _trim(self, now: float) -> None:
        entries = self._entries
        while len(entries) > self._limits.size:
            entries.popleft()
        horizon = now - self._limits.age
        while entries and entries[0][0] < horizon:
            entries.popleft()
