"""Live subscriptions indexed by ``(stream, group)``, and fan-out of events to them.

Each event is encoded to a WebSocket frame once per group; every matching subscription then gets the same
``bytes`` object. A subscription that is still waiting for its snapshot buffers frames, so the client sees
``sync`` first and no event from the window between registering and reading the snapshot is lost; events the
snapshot (or replay) already covers, by offset, are dropped, so none is seen twice.
"""

from __future__ import annotations

from collections.abc import Hashable

from streamhub.core.model import StreamEvent
from streamhub.engine.outbox import Outbox
from streamhub.protocol.codec import encode, text_frame

__all__ = ["Hub", "Subscription"]

GroupKey = tuple[str, str]


class Subscription:
    """One client subscription: a group (``item`` None) or one item, delivering into an outbox."""

    __slots__ = ("buffer", "buffered_bytes", "floor", "item", "outbox")

    def __init__(self, outbox: Outbox, item: str | None) -> None:
        self.outbox = outbox
        self.item = item
        # (offset, frame) held back until the snapshot has been sent; None once live.
        self.buffer: list[tuple[int, bytes]] | None = []
        self.buffered_bytes = 0  # bounded like the outbox: a client that cannot take its catch-up is cut off
        # Events at or below this offset are already in what the client got first.
        self.floor = 0

    def deliver(self, frame: bytes, offset: int) -> None:
        """Queue ``frame`` for the client (or hold it until the snapshot is out)."""
        if self.buffer is None:
            if offset > self.floor:
                self.outbox.put(frame)
        else:
            self.buffer.append((offset, frame))
            self.buffered_bytes += len(frame)
            if self.buffered_bytes > self.outbox.max_pending_bytes:
                self.outbox.cut_off()

    async def go_live(self, first: list[bytes], floor: int) -> None:
        """Send ``first`` (sync, then any replayed events), then held-back events past ``floor``, then live.

        Large catch-ups are sent as the client reads them (``Outbox.drain``); live events keep buffering
        meanwhile, and the switch to live happens with no ``await`` in between, so nothing slips through.
        """
        outbox = self.outbox
        for frame in first:
            outbox.put(frame)
            await outbox.drain()
        held, self.buffer = self.buffer or [], None
        self.floor = floor
        for offset, frame in held:
            if offset > floor:
                outbox.put(frame)


class Hub:
    """Routes events to the subscriptions of their group."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, dict[Hashable, Subscription]] = {}
        self.delivered = 0  # frames handed to outboxes; for metrics and benchmarks

    def add(self, key: Hashable, stream: str, group: str, sub: Subscription) -> bool:
        """Register ``sub`` under ``key`` (replacing one with the same key).

        Returns:
            True if the group had no subscription before (the engine then starts watching it).
        """
        subs = self._groups.get((stream, group))
        if subs is None:
            self._groups[(stream, group)] = {key: sub}
            return True
        subs[key] = sub
        return False

    def remove(self, key: Hashable, stream: str, group: str) -> bool:
        """Drop the subscription under ``key``.

        Returns:
            True if that was the group's last subscription (the engine then stops watching it).
        """
        subs = self._groups.get((stream, group))
        if subs is None or subs.pop(key, None) is None:
            return False
        if subs:
            return False
        del self._groups[(stream, group)]
        return True

    def watched(self) -> list[GroupKey]:
        """Every group with at least one subscription."""
        return list(self._groups)

    def dispatch(self, event: StreamEvent) -> None:
        """Deliver ``event`` to every matching subscription of its group; encodes it at most once."""
        subs = self._groups.get((event.stream, event.group))
        if not subs:
            return
        frame = text_frame(encode(event.to_wire()))
        item = event.item
        offset = event.offset
        count = 0
        for sub in subs.values():
            if sub.item is None or sub.item == item:
                sub.deliver(frame, offset)
                count += 1
        self.delivered += count
