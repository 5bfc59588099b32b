"""Redis faults caused for real: the server killed and restarted (same port, same append-only file) or frozen.

What must hold: calls fail fast with a temporary ``AdapterError`` naming Redis and the URL, nothing hangs, the
adapter reconnects by itself, watched groups are subscribed again and reported as gaps, and every write Redis
acknowledged is still there afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamhub.adapters.redis import RedisAdapter
from streamhub.core.model import CUSTOM, ItemRef, StreamEvent
from streamhub.core.update_ops import parse_ops
from streamhub.errors import AdapterError
from tests.adapters.conftest import Store
from tests.helpers import timeout
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

FAST = {"timeout": 0.5, "health_interval": 0.2}  # so that a frozen server is noticed within a second


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", durable=True)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.kill()


@pytest.fixture
async def store(durable_redis: RedisServer) -> AsyncIterator[Store]:
    harness = await Store("redis", RedisAdapter(durable_redis.url, "faults:", **FAST)).start()
    try:
        yield harness
    finally:
        await harness.adapter.close()


async def until(check: Callable[[], bool], wait: float = 5.0) -> None:
    deadline = time.monotonic() + timeout(wait)
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def fails_fast(call: Awaitable[Any], url: str, limit: float) -> AdapterError:
    started = time.monotonic()
    with pytest.raises(AdapterError) as failure:
        await call
    assert time.monotonic() - started < limit
    assert failure.value.temporary and "Redis" in failure.value.message and url in failure.value.message
    return failure.value


def every_call(adapter: RedisAdapter) -> list[Awaitable[Any]]:
    ref = ItemRef("s", "g", "x")
    return [adapter.set(ref, 1), adapter.get(ref), adapter.delete(ref), adapter.list_items("s", "g"),
            adapter.list_groups("s"), adapter.list_all(),
            adapter.update(ref, parse_ops([{"type": "increment", "path": "n", "by": 1}])),
            adapter.send(StreamEvent("s", "g", None, CUSTOM, 1, "t"))]


async def test_killed_and_restarted_redis(store: Store, durable_redis: RedisServer) -> None:
    adapter = store.adapter
    assert isinstance(adapter, RedisAdapter)
    await adapter.watch("s", "g")
    await asyncio.gather(*(adapter.set(ItemRef("s", "g", f"before{n}"), n) for n in range(20)))  # pooled conns
    await store.events(20)
    durable_redis.kill()
    for call in every_call(adapter):
        await fails_fast(call, durable_redis.url, limit=1.0)
    durable_redis.start()  # no call in between: pooled connections are all stale now
    after = await asyncio.gather(*(adapter.set(ItemRef("s", "g", f"after{n}"), 100 + n) for n in range(20)))
    assert all(not change.existed for change in after)
    await until(lambda: store.gaps == [("s", "g")])
    await adapter.set(ItemRef("s", "g", "live"), "again")
    await until(lambda: any(e.item == "live" for e in store.delivered))
    assert store.delivered[-1].data == "again"
    items = await adapter.list_items("s", "g")
    assert items[-1] == "again"  # and everything acknowledged before the kill is still there:
    assert sorted(items[:-1]) == [*range(20), *range(100, 120)]
    assert await adapter.list_all() == {"s": ["g"]}


async def test_frozen_redis_fails_calls_within_the_timeout_then_recovers(
        store: Store, durable_redis: RedisServer) -> None:
    adapter = store.adapter
    assert isinstance(adapter, RedisAdapter)
    await adapter.watch("s", "g")
    await adapter.set(ItemRef("s", "g", "a"), 1)
    assert durable_redis.proc is not None
    os.kill(durable_redis.proc.pid, signal.SIGSTOP)
    try:
        error = await fails_fast(adapter.set(ItemRef("s", "g", "b"), 2), durable_redis.url, limit=1.5)
        assert "may or may not have been applied" in error.message
        await fails_fast(adapter.get(ItemRef("s", "g", "a")), durable_redis.url, limit=1.5)
        await asyncio.sleep(FAST["health_interval"] * 3)  # the subscription misses its PONG
    finally:
        os.kill(durable_redis.proc.pid, signal.SIGCONT)
    await until(lambda: store.gaps == [("s", "g")])
    await adapter.set(ItemRef("s", "g", "c"), 3)
    await until(lambda: [e.item for e in store.delivered][-1:] == ["c"])


async def test_groups_watched_or_unwatched_during_an_outage(store: Store, durable_redis: RedisServer) -> None:
    adapter = store.adapter
    assert isinstance(adapter, RedisAdapter)
    await adapter.watch("s", "old")
    durable_redis.kill()
    await adapter.watch("s", "new")  # returns at once: subscribed (and reported) once Redis is back
    await adapter.unwatch("s", "old")
    durable_redis.start()
    await until(lambda: store.gaps == [("s", "new")])
    channels = [adapter.keys.channel("s", group) for group in ("new", "old")]
    with durable_redis.client() as client:
        assert client.pubsub_numsub(*channels) == [(channels[0], 1), (channels[1], 0)]
    await adapter.set(ItemRef("s", "old", "i"), 0)
    await adapter.set(ItemRef("s", "new", "i"), 1)
    await until(lambda: len(store.delivered) == 1)
    assert store.delivered[0].group == "new"


async def test_writes_flowing_through_an_outage_keep_every_acknowledged_one(
        store: Store, durable_redis: RedisServer) -> None:
    adapter = store.adapter
    acknowledged: list[int] = []
    failed = 0

    async def writer() -> None:
        nonlocal failed
        for n in range(400):
            try:
                await adapter.set(ItemRef("s", "g", f"i{n}"), n)
                acknowledged.append(n)
            except AdapterError:
                failed += 1
            await asyncio.sleep(0.002)

    task = asyncio.create_task(writer())
    await until(lambda: len(acknowledged) > 50)
    durable_redis.kill()
    await until(lambda: failed > 10)
    durable_redis.start()
    await task
    assert acknowledged[-1] == 399  # writes succeed again after the restart
    stored = await adapter.list_items("s", "g")
    assert set(acknowledged) <= set(stored)
    assert set(stored) - set(acknowledged) <= set(range(400))  # at most the write in flight at the kill
    assert len(set(stored) - set(acknowledged)) <= 1
