"""Live subscriptions indexed by ``(stream, group)``, and fan-out of events to them.

Each event is encoded to a WebSocket frame once per group; every matching subscription then gets the same
``bytes`` object. A subscription that is still waiting for its snapshot buffers frames, so the client sees
``sync`` first and no event from the window between registering and reading the snapshot is lost; events the
snapshot (or replay) already covers, by offset, are dropped, so none is seen twice. The same buffering serves a
resync (the adapter may have lost events of a group): ``hold`` starts a new buffer, and only the snapshot read
after that hold may end it, so a client never sees a snapshot older than an event it already got.

Presence frames (``engine.presence``) never pass through ``Hub.dispatch``: a subscription that asked for them
carries a ``PresenceView`` that holds them until its presence ``sync`` is out, so subscriptions without presence
pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Hashable

from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.model import AnyEvent
from streamhub.engine.outbox import Outbox
from streamhub.protocol.client_messages import SubscriptionData
from streamhub.protocol.codec import text_frame

__all__ = ["Hold", "Hub", "PresenceView", "Subscription"]

GroupKey = tuple[str, str]
Hold = list[tuple[int, bytes]]
"""Frames held back for a subscription (offset, frame); the list object is also the token of one hold."""


class PresenceView:
    """The presence side of a subscription that joined with ``"presence": true``.

    Presence frames are held (``pending``, with their seq) until the subscription's presence ``sync`` is out, and
    that sync is sent only after the join's own ``sync`` (``ready``). ``pending`` is also the token of one presence
    sync: a newer one (after a gap) replaces the list, and the older read is then dropped.
    """

    __slots__ = ("floor", "held_bytes", "pending", "ready")

    def __init__(self) -> None:
        self.pending: list[tuple[int, bytes]] | None = []
        self.held_bytes = 0
        self.ready = False  # the join's sync is out: a presence sync may follow it
        self.floor = 0  # changes at or below this seq are in the presence sync the client got

    def deliver(self, outbox: Outbox, frame: bytes, seq: int) -> None:
        """Queue a presence frame, or hold it until the presence sync is out."""
        if self.pending is None:
            if seq > self.floor:
                outbox.put(frame)
        else:
            self.pending.append((seq, frame))
            self.held_bytes += len(frame)
            if self.held_bytes > outbox.max_pending_bytes:  # bounded like the outbox
                outbox.cut_off()

    def hold(self) -> list[tuple[int, bytes]]:
        """Hold presence frames anew (a fresh presence sync is coming); returns its token."""
        self.pending = []
        self.held_bytes = 0
        return self.pending

    def go_live(self, outbox: Outbox, frame: bytes, seq: int, token: list[tuple[int, bytes]]) -> bool:
        """Send the presence ``sync`` read for ``token``, then the held changes it does not cover; False if stale."""
        if self.pending is not token:
            return False
        outbox.put(frame)
        self.floor = seq
        for held_seq, held in token:
            if held_seq > seq:
                outbox.put(held)
        self.pending = None
        self.held_bytes = 0
        return True


class Subscription:
    """One client subscription: a group (``item`` None) or one item, delivering into an outbox.

    ``data`` is the client's join (needed to build a fresh ``sync`` when the group is resynced);
    ``connection_id`` names the connection it belongs to; ``presence`` is set when it asked for presence events.
    """

    __slots__ = ("buffer", "buffered_bytes", "connection_id", "data", "floor", "item", "outbox", "presence")

    def __init__(self, outbox: Outbox, item: str | None, data: SubscriptionData | None = None,
                 connection_id: str = "") -> None:
        self.outbox = outbox
        self.item = item
        self.data = data
        self.connection_id = connection_id
        self.presence: PresenceView | None = None
        # (offset, frame) held back until the snapshot has been sent; None once live.
        self.buffer: Hold | None = []
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

    def hold(self) -> Hold:
        """Start buffering anew (a fresh snapshot is coming); returns the token ``go_live`` must be given."""
        self.buffer = []
        self.buffered_bytes = 0
        return self.buffer

    async def go_live(self, first: list[bytes], floor: int, held: Hold | None = None) -> bool:
        """Send ``first`` (sync, then any replayed events), then held-back events past ``floor``, then live.

        Large catch-ups are sent as the client reads them (``Outbox.drain``); live events keep buffering
        meanwhile, and the switch to live happens with no ``await`` in between, so nothing slips through.
        With ``held`` (a token from ``hold`` or the initial ``buffer``), do nothing and return False if a later
        ``hold`` superseded it: that snapshot may be older than events the newer one will cover.
        """
        if held is not None and self.buffer is not held:
            return False
        outbox = self.outbox
        for frame in first:
            outbox.put(frame)
            await outbox.drain()
        if held is not None and self.buffer is not held:
            return False  # superseded while the catch-up was being read; the newer sync follows
        pending, self.buffer = self.buffer or [], None
        self.buffered_bytes = 0
        self.floor = floor
        for offset, frame in pending:
            if offset > floor:
                outbox.put(frame)
        return True


class Hub:
    """Routes events to the subscriptions of their group."""

    def __init__(self, metrics: Metrics = NULL_METRICS) -> None:
        self._groups: dict[GroupKey, dict[Hashable, Subscription]] = {}
        self._metrics = metrics
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

    def subscriptions(self, stream: str, group: str) -> list[Subscription]:
        """The subscriptions of one group, in registration order."""
        return list(self._groups.get((stream, group), {}).values())

    def watched(self) -> list[GroupKey]:
        """Every group with at least one subscription."""
        return list(self._groups)

    def subscription_count(self) -> int:
        """Open subscriptions of every group (read when metrics are scraped, not kept up to date)."""
        return sum(len(subs) for subs in self._groups.values())

    def dispatch(self, event: AnyEvent) -> None:
        """Deliver ``event`` to every matching subscription of its group; encodes it at most once.

        An ``EncodedEvent``'s JSON is framed as it came; its item is decoded only for item subscriptions.
        """
        subs = self._groups.get((event.stream, event.group))
        if not subs:
            return
        frame = text_frame(event.to_json())
        offset = event.offset
        count = 0
        for sub in subs.values():
            if sub.item is None or sub.item == event.item:
                sub.deliver(frame, offset)
                count += 1
        self.delivered += count
        self._metrics.delivered(count, count * len(frame))  # once per event, however many subscribers
