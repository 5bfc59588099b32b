"""Outbox coalescing and bounds, Hub routing and encode-once, without sockets."""

from __future__ import annotations

import asyncio

from streamhub.core.model import StreamEvent
from streamhub.engine.hub import Hub, Subscription
from streamhub.engine.outbox import Outbox


class RecordingOutbox(Outbox):
    """Keeps every frame object put into it, to check identity (encode once) and order."""

    def __init__(self) -> None:
        super().__init__(lambda data: None, lambda: 0, lambda: None, 10**6)
        self.got: list[bytes] = []

    def put(self, frame: bytes) -> None:
        self.got.append(frame)


class FakeTransport:
    """Records writes; ``backlog`` plays bytes the peer has not read (a fault we cannot cause in-process)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.backlog = 0
        self.overflowed = 0

    def outbox(self, limit: int = 1000) -> Outbox:
        return Outbox(self.writes.append, lambda: self.backlog, self._overflow, limit, grace=0.05)

    def _overflow(self) -> None:
        self.overflowed += 1


async def test_frames_of_one_tick_are_written_once_in_order() -> None:
    transport = FakeTransport()
    outbox = transport.outbox()
    for frame in (b"a", b"b", b"c"):
        outbox.put(frame)
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"abc"]
    outbox.put(b"d")
    await asyncio.sleep(0)
    assert transport.writes == [b"abc", b"d"]


async def test_overflow_closes_once_and_drops_later_frames() -> None:
    transport = FakeTransport()
    outbox = transport.outbox(limit=10)
    outbox.put(b"x" * 8)
    transport.backlog = 20  # the peer stopped reading
    await asyncio.sleep(0)
    assert not outbox.closed  # a grace period first: a healthy client may just be taking a burst
    await asyncio.sleep(0.1)
    assert transport.overflowed == 1 and outbox.closed
    outbox.put(b"more")
    await asyncio.sleep(0)
    assert transport.writes == [b"x" * 8] and transport.overflowed == 1
    healthy = FakeTransport()
    big = healthy.outbox(limit=10)
    big.put(b"s" * 50)  # one large frame (a snapshot) is allowed ...
    healthy.backlog = 40
    await asyncio.sleep(0)
    healthy.backlog = 0  # ... and the client reads it within the grace period
    await asyncio.sleep(0.1)
    assert not big.closed and healthy.overflowed == 0
    burst = FakeTransport().outbox(limit=10)
    burst.put(b"y" * 6)
    burst.put(b"y" * 6)  # many frames over the limit within one tick
    assert burst.closed


async def test_hub_encodes_once_and_routes_by_group_and_item() -> None:
    outbox = RecordingOutbox()
    hub = Hub()
    group_sub, item_sub, other_item = Subscription(outbox, None), Subscription(outbox, "a"), Subscription(outbox, "b")
    for key, sub in (("g", group_sub), ("i", item_sub), ("o", other_item)):
        await sub.go_live([], 0)
        hub.add(key, "s", "g", sub)
    delivered = outbox.got
    delivered.clear()
    hub.dispatch(StreamEvent("s", "g", "a", "update", {"v": 1}, offset=1))
    assert len(delivered) == 2 and delivered[0] is delivered[1]  # the same bytes object: encoded once
    hub.dispatch(StreamEvent("s", "other", "a", "update", 1, offset=1))
    assert len(delivered) == 2
    assert hub.remove("g", "s", "g") is False and hub.remove("i", "s", "g") is False
    assert hub.remove("o", "s", "g") is True and hub.watched() == []


async def test_subscription_buffers_until_snapshot_is_sent() -> None:
    outbox = RecordingOutbox()
    sent = outbox.got
    sub = Subscription(outbox, None)
    sub.deliver(b"e1", 1)
    sub.deliver(b"e2", 2)
    assert sent == []
    await sub.go_live([b"sync"], 1)  # the snapshot already holds change 1
    sub.deliver(b"e3", 3)
    assert sent == [b"sync", b"e2", b"e3"]
    ahead = Subscription(outbox, None)
    ahead.deliver(b"a1", 1)
    await ahead.go_live([b"sync2"], 3)  # the snapshot holds changes applied but not yet published (durable store)
    ahead.deliver(b"a2", 2)
    ahead.deliver(b"a3", 3)
    ahead.deliver(b"a4", 4)
    assert sent[3:] == [b"sync2", b"a4"]


async def test_a_failing_write_does_not_starve_the_other_outboxes_of_the_tick() -> None:
    written: list[bytes] = []

    def broken(data: bytes) -> None:
        raise ConnectionResetError("peer went away")

    first = Outbox(broken, lambda: 0, lambda: None, 1000)
    second = Outbox(written.append, lambda: 0, lambda: None, 1000)
    first.put(b"lost")
    second.put(b"delivered")
    await asyncio.sleep(0)
    assert written == [b"delivered"]


async def test_outboxes_of_one_tick_share_one_flush_and_urgent_ones_go_first() -> None:
    order: list[bytes] = []
    fan_out = [Outbox(order.append, lambda: 0, lambda: None, 1000) for _ in range(3)]
    reply = Outbox(order.append, lambda: 0, lambda: None, 1000, urgent=True)
    for index, outbox in enumerate(fan_out):
        outbox.put(b"event%d" % index)
    reply.put(b"result")
    assert order == []
    await asyncio.sleep(0)
    assert order == [b"result", b"event0", b"event1", b"event2"]
