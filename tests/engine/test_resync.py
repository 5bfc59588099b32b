"""Engine side of a distributed adapter: gaps get a fresh ``sync``; no snapshot is read before a watch is live.

The adapter's behaviour is staged with a memory store whose event delivery can be switched off (the real
faults, a Redis outage, are exercised in ``tests/adapters/test_redis_faults.py``). Everything else is real
sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamhub.adapters.base import EventListener, GapListener
from streamhub.adapters.memory import MemoryAdapter
from streamhub.core.model import ItemRef, StreamEvent
from streamhub.core.positions import Position
from streamhub.errors import AdapterError
from streamhub.transport.server import Server
from tests.conftest import make_config, stream_url
from tests.helpers import Subscriber


class LossyAdapter(MemoryAdapter):
    """Stores every write; drops the events of writes made while ``losing`` is set, like a broken bus."""

    def __init__(self) -> None:
        super().__init__()
        self.losing = False
        self.failing_reads = 0
        self.gap: GapListener | None = None

    async def start(self, listener: EventListener, on_gap: GapListener | None = None) -> None:
        await super().start(listener, on_gap)
        self.gap = on_gap

    def _emit(self, event: StreamEvent) -> None:
        if not self.losing:
            super()._emit(event)

    async def snapshot(self, stream: str, group: str, item: str | None) -> tuple[Any, Position]:
        if self.failing_reads:
            self.failing_reads -= 1
            raise AdapterError("store unreachable", temporary=True)
        return await super().snapshot(stream, group, item)


@pytest.fixture
async def lossy() -> AsyncIterator[tuple[Server, LossyAdapter]]:
    adapter = LossyAdapter()
    srv = Server(make_config(), adapter=adapter)
    await srv.start()
    try:
        yield srv, adapter
    finally:
        await srv.close()


async def test_gap_sends_fresh_sync_to_group_and_item_subscribers_before_later_events(
        lossy: tuple[Server, LossyAdapter]) -> None:
    srv, adapter = lossy
    await adapter.set(ItemRef("s", "g", "a"), 1)
    async with Subscriber(stream_url(srv)) as sub, Subscriber(stream_url(srv)) as other:
        await sub.join("s", "g", sub_id="group")
        await sub.join("s", "g", item="a", sub_id="item")
        await other.join("s", "elsewhere", sub_id="other")
        assert [(await sub.next())["event"] for _ in range(2)] == [{"type": "sync", "data": [1]},
                                                                    {"type": "sync", "data": 1}]
        assert (await other.next())["event"]["type"] == "sync"
        adapter.losing = True
        await adapter.set(ItemRef("s", "g", "a"), 2)  # nobody hears about these two
        await adapter.set(ItemRef("s", "g", "b"), 3)
        adapter.losing = False
        assert adapter.gap is not None
        adapter.gap("s", "g")
        await adapter.set(ItemRef("s", "g", "a"), 4)  # delivered right after the gap: held, covered by the sync
        group_sync, item_sync = [await sub.next() for _ in range(2)]
        # The snapshot is read after the gap (and after that write): it holds it, so the held-back update of
        # offset 4 is not sent again.
        assert group_sync["event"] == {"type": "sync", "data": [4, 3]} and group_sync["recovered"] is False
        assert item_sync["event"] == {"type": "sync", "data": 4}
        assert group_sync["position"]["offset"] == item_sync["position"]["offset"] == 4
        await adapter.set(ItemRef("s", "g", "b"), 5)
        after = await sub.next()
        assert (after["id"], after["event"], after["offset"]) == ("b", {"type": "update", "data": 5}, 5)
        with pytest.raises(asyncio.TimeoutError):
            await other.next(wait=0.2)  # other groups are left alone


async def test_resync_retries_until_the_store_answers(lossy: tuple[Server, LossyAdapter]) -> None:
    srv, adapter = lossy
    async with Subscriber(stream_url(srv)) as sub:
        await sub.join("s", "g")
        assert (await sub.next())["event"] == {"type": "sync", "data": []}
        adapter.losing = True
        await adapter.set(ItemRef("s", "g", "a"), 1)
        adapter.losing = False
        adapter.failing_reads = 2
        assert adapter.gap is not None
        adapter.gap("s", "g")
        await adapter.set(ItemRef("s", "g", "b"), 2)
        assert (await sub.next())["event"] == {"type": "sync", "data": [1, 2]}
        assert adapter.failing_reads == 0
        await adapter.set(ItemRef("s", "g", "c"), 3)
        assert (await sub.next())["event"] == {"type": "create", "data": 3}


async def test_second_gap_supersedes_a_pending_resync(lossy: tuple[Server, LossyAdapter]) -> None:
    srv, adapter = lossy
    async with Subscriber(stream_url(srv)) as sub:
        await sub.join("s", "g")
        assert (await sub.next())["event"] == {"type": "sync", "data": []}
        assert adapter.gap is not None
        adapter.failing_reads = 1
        adapter.gap("s", "g")  # its first read fails; before it retries, another gap arrives
        await asyncio.sleep(0)
        adapter.losing = True
        await adapter.set(ItemRef("s", "g", "a"), 1)
        adapter.losing = False
        adapter.gap("s", "g")
        assert (await sub.next())["event"] == {"type": "sync", "data": [1]}
        with pytest.raises(asyncio.TimeoutError):
            await sub.next(wait=0.3)  # exactly one sync: the superseded resync sent nothing


class SlowWatchAdapter(MemoryAdapter):
    """Delivers only events of watched groups, and its first ``watch`` completes only when released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.watched: set[tuple[str, str]] = set()

    async def watch(self, stream: str, group: str) -> None:
        await self.release.wait()
        self.watched.add((stream, group))

    def _emit(self, event: StreamEvent) -> None:
        if (event.stream, event.group) in self.watched:
            super()._emit(event)


async def test_later_joins_wait_for_the_watch_the_first_join_started() -> None:
    adapter = SlowWatchAdapter()
    srv = Server(make_config(), adapter=adapter)
    await srv.start()
    try:
        async with Subscriber(stream_url(srv)) as first, Subscriber(stream_url(srv)) as second:
            await first.join("s", "g")
            await asyncio.sleep(0.05)  # first's watch is in flight
            await second.join("s", "g")
            await asyncio.sleep(0.05)
            await adapter.set(ItemRef("s", "g", "a"), 1)  # before the watch is live: no event for anyone
            adapter.release.set()
            for sub in (first, second):  # so both snapshots must be read after the watch, and hold the write
                assert (await sub.next())["event"] == {"type": "sync", "data": [1]}
    finally:
        await srv.close()
