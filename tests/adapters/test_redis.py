"""What only the Redis adapter has: indexes instead of scans, prefixes, subscriptions, cross-engine atomicity.

Two ``RedisAdapter`` instances on one server are two engines as far as Redis can tell (separate connections,
separate subscriptions). Faults (Redis killed or frozen) are in ``test_redis_faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from streamhub.adapters.redis import RedisAdapter
from streamhub.core.model import CUSTOM, ItemRef, StreamEvent
from streamhub.core.positions import LogLimits, Position
from streamhub.core.update_ops import parse_ops
from streamhub.errors import AdapterError
from tests.adapters.conftest import Store
from tests.helpers import free_port, wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def engines(redis_url: str, key_prefix: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two adapters sharing one deployment (same prefix), like two engines: on one server, then on a cluster."""
    first = await Store("redis", RedisAdapter(redis_url, key_prefix)).start()
    second = await Store("redis", RedisAdapter(redis_url, key_prefix)).start()
    try:
        yield first, second
    finally:
        await first.adapter.close()
        await second.adapter.close()


def command_calls(server: RedisServer) -> dict[str, int]:
    with server.client() as client:
        stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_listing_uses_indexes_never_a_keyspace_scan(redis_server: RedisServer, key_prefix: str) -> None:
    adapter = RedisAdapter(redis_server.url, key_prefix)
    await adapter.start(lambda event: None)
    try:
        for stream in ("s1", "s2"):
            for group in ("g1", "g2", "g3"):
                await adapter.set(ItemRef(stream, group, "i"), 1)
        with redis_server.client() as client:
            # items, order, position and change log per group; a group index per stream; the stream set
            assert len(client.keys(f"{key_prefix}*")) == 2 * 3 * 4 + 2 + 1
            client.config_resetstat()
        assert await adapter.list_groups("s1") == ["g1", "g2", "g3"]
        assert await adapter.list_all() == {"s1": ["g1", "g2", "g3"], "s2": ["g1", "g2", "g3"]}
        assert await adapter.list_items("s2", "g2") == [1]
        calls = command_calls(redis_server)
        assert "keys" not in calls and "scan" not in calls, calls
    finally:
        await adapter.close()


async def test_prefixes_keep_deployments_apart(redis_url: str, key_prefix: str) -> None:
    blue = await Store("redis", RedisAdapter(redis_url, key_prefix + "blue:")).start()
    green = await Store("redis", RedisAdapter(redis_url, key_prefix + "green:")).start()
    try:
        ref = ItemRef("s", "g", "i")
        for store in (blue, green):
            await store.adapter.watch("s", "g")
        await blue.adapter.set(ref, "blue")
        assert (await green.adapter.set(ref, "green")).existed is False
        assert await blue.adapter.get(ref) == (True, "blue") and await green.adapter.list_all() == {"s": ["g"]}
        await blue.adapter.delete(ref)
        assert await blue.adapter.list_all() == {} and await green.adapter.get(ref) == (True, "green")
        assert [e.data for e in await blue.events(2)] == ["blue", "blue"]
        assert [e.data for e in await green.events(1)] == ["green"]
        await green.quiet(1)
    finally:
        await blue.adapter.close()
        await green.adapter.close()


async def test_one_subscription_per_watched_group_released_by_unwatch(
        redis_server: RedisServer, key_prefix: str) -> None:
    first = await Store("redis", RedisAdapter(redis_server.url, key_prefix)).start()
    second = await Store("redis", RedisAdapter(redis_server.url, key_prefix)).start()
    try:
        await _one_subscription_per_watched_group(first, second, redis_server)
    finally:
        await first.adapter.close()
        await second.adapter.close()


async def _one_subscription_per_watched_group(first: Store, second: Store, redis_server: RedisServer) -> None:
    adapter = first.adapter
    assert isinstance(adapter, RedisAdapter)
    channel = adapter.keys.channel("s", "g:*")
    with redis_server.client() as client:
        await first.adapter.watch("s", "g:*")
        await second.adapter.watch("s", "g:*")
        assert client.pubsub_numsub(channel) == [(channel, 2)]
        await second.adapter.set(ItemRef("s", "g:*", "i"), 1)
        await second.adapter.set(ItemRef("s", "g:other", "i"), 1)  # a group nobody watches
        assert [e.group for e in await first.events(1)] == ["g:*"]
        await first.adapter.unwatch("s", "g:*")
        await second.adapter.send(StreamEvent("s", "g:*", None, CUSTOM, 2, "ping"))
        assert [e.data for e in await second.events(2)] == [1, 2]
        await first.quiet(1)
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: client.pubsub_numsub(channel) == [(channel, 1)], 2)
        assert client.pubsub_numsub(channel) == [(channel, 1)]
        assert client.pubsub_numpat() == 0  # no pattern subscriptions


async def test_writes_on_one_engine_reach_the_other_in_order(engines: tuple[Store, Store]) -> None:
    first, second = engines
    await first.adapter.watch("s", "g")
    expected = []
    for n in range(50):
        change = await second.adapter.set(ItemRef("s", "g", f"i{n % 5}"), n)
        assert change.event is not None
        expected.append(change.event)
    assert await first.events(50) == expected


async def test_two_engines_times_fifty_concurrent_increments_are_exact(engines: tuple[Store, Store]) -> None:
    first, _second = engines
    ref = ItemRef("counters", "g", "c")
    increment = parse_ops([{"type": "increment", "path": "n", "by": 1}])
    await first.adapter.watch("counters", "g")
    changes = await asyncio.gather(*(store.adapter.update(ref, increment) for store in engines for _ in range(50)))
    assert await first.adapter.get(ref) == (True, {"n": 100})
    assert sorted(change.new["n"] for change in changes) == list(range(1, 101))  # each saw a distinct state
    assert sorted(event.data["n"] for event in await first.events(100)) == list(range(1, 101))
    races = sum(store.adapter.update_races for store in engines)  # type: ignore[attr-defined]
    assert races < 100, f"{races} lost races: updates of one item are not serialised inside an engine"


async def test_updates_queued_on_one_item_read_it_once_and_see_every_other_write(
        redis_server: RedisServer, key_prefix: str) -> None:
    adapter = RedisAdapter(redis_server.url, key_prefix)
    other = RedisAdapter(redis_server.url, key_prefix)  # another engine, writing while the updates queue up
    await adapter.start(lambda event: None)
    await other.start(lambda event: None)
    try:
        ref = ItemRef("counters", "g", "c")
        increment = parse_ops([{"type": "increment", "path": "n", "by": 1}])
        await adapter.set(ref, {"n": 0})
        with redis_server.client() as client:
            client.config_resetstat()
        results = await asyncio.gather(*(adapter.update(ref, increment) for _ in range(50)),
                                       other.update(ref, parse_ops([{"type": "increment", "path": "n", "by": 100}])))
        assert await adapter.get(ref) == (True, {"n": 150})  # the other engine's write was not lost
        assert sorted(change.new["n"] for change in results[:50]) == sorted(set(c.new["n"] for c in results[:50]))
        calls = command_calls(redis_server)
        reads = calls.get("hget", 0) - calls.get("evalsha", 0)  # the write script's own HGET counts too
        assert reads <= 4, f"{reads} reads for 50 queued updates: each should start from the last one's write"
    finally:
        await adapter.close()
        await other.close()


async def test_racing_deletes_and_creates_from_two_engines_keep_the_indexes_true(
        engines: tuple[Store, Store]) -> None:
    """On a cluster the indexes are kept beside the writes (redis_index.py): a group emptied on one engine while
    another re-creates it must stay listed."""
    first, second = engines
    for round_ in range(20):
        group = f"g{round_}"
        await first.adapter.set(ItemRef("s", group, "a"), 1)
        await asyncio.gather(first.adapter.delete(ItemRef("s", group, "a")),
                             second.adapter.set(ItemRef("s", group, "b"), 2))
    listed = await first.adapter.list_groups("s")
    for round_ in range(20):
        held = await first.adapter.list_items("s", f"g{round_}")
        assert held == [2] and f"g{round_}" in listed, (round_, held, listed)
    assert await second.adapter.list_all() == {"s": sorted(f"g{n}" for n in range(20))}


async def test_unreachable_redis_fails_start_fast_naming_the_url() -> None:
    url = f"redis://user:secret@127.0.0.1:{free_port()}/0"
    adapter = RedisAdapter(url)
    started = time.monotonic()
    with pytest.raises(AdapterError) as failure:
        await adapter.start(lambda event: None)
    assert time.monotonic() - started < 2
    assert failure.value.temporary
    message = failure.value.message
    assert "Redis" in message and "127.0.0.1" in message and "secret" not in message and "***" in message
    await adapter.close()


async def test_the_change_log_is_trimmed_to_its_size(redis_server: RedisServer, key_prefix: str) -> None:
    adapter = RedisAdapter(redis_server.url, key_prefix, limits=LogLimits(size=3))
    await adapter.start(lambda event: None)
    try:
        for n in range(10):
            await adapter.set(ItemRef("s", "g", f"i{n}"), n)
        with redis_server.client() as client:
            logged = client.lrange(adapter.keys.log("s", "g"), 0, -1)
        assert [orjson.loads(raw)["offset"] for raw in logged] == [8, 9, 10]
        _, position = await adapter.snapshot("s", "g", None)
        replayed = await adapter.replay("s", "g", Position(position.epoch, 7))
        assert replayed is not None and [event.offset for event in replayed[0]] == [8, 9, 10]
        assert await adapter.replay("s", "g", Position(position.epoch, 6)) is None  # trimmed: no partial history
    finally:
        await adapter.close()


async def test_a_full_change_log_is_trimmed_a_sixteenth_at_a_time(redis_server: RedisServer, key_prefix: str) -> None:
    adapter = RedisAdapter(redis_server.url, key_prefix, limits=LogLimits(size=32))
    await adapter.start(lambda event: None)
    try:
        lengths = []
        with redis_server.client() as client:
            for n in range(1, 41):
                await adapter.set(ItemRef("s", "g", "i"), n)
                lengths.append(client.llen(adapter.keys.log("s", "g")))
            logged = [orjson.loads(raw)["offset"] for raw in client.lrange(adapter.keys.log("s", "g"), 0, -1)]
        # Never more than the size; the 33rd change trims to 30 (32 - 32 // 16), then 2 more fit before the next.
        assert lengths[:32] == list(range(1, 33))
        assert lengths[32:] == [30, 31, 32, 30, 31, 32, 30, 31]
        assert logged == list(range(10, 41))
        _, position = await adapter.snapshot("s", "g", None)
        replayed = await adapter.replay("s", "g", Position(position.epoch, 9))
        assert replayed is not None and [event.offset for event in replayed[0]] == list(range(10, 41))
        assert await adapter.replay("s", "g", Position(position.epoch, 8)) is None  # trimmed: no partial history
    finally:
        await adapter.close()
