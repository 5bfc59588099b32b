"""What only a Redis Cluster asks of the adapter, on real clusters started from ``redis-server``.

The contract suite runs on a cluster too (``store`` fixture, ``redis-cluster``). Here: a group's keys share one slot
while groups spread over every primary; the indexes instead of scans; one sharded subscription per watched group on
its slot's owner; a slot moved under a live engine; a primary killed under load with ``durable_replicas: 1`` and
no acknowledged write lost. Two-engine tests (order, atomic updates, racing index updates) run on both a server and
a cluster in ``test_redis.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamhub.adapters.redis import RedisAdapter
from streamhub.adapters.redis_shards import key_slot, seeds
from streamhub.core.model import ItemRef
from streamhub.engine.metrics import EngineMetrics
from streamhub.errors import AdapterError, ConfigError
from tests.adapters.conftest import Store
from tests.helpers import free_port, timeout, wait_until
from tests.redis_cluster import RedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.redis_cluster]


def _adapter(store: Store) -> RedisAdapter:
    assert isinstance(store.adapter, RedisAdapter)
    return store.adapter


def _command_calls(cluster: RedisCluster) -> dict[str, int]:
    calls: dict[str, int] = {}
    for node in cluster.nodes:
        with cluster.client(node.port) as client:
            for name, value in client.info("commandstats").items():
                calls[name.removeprefix("cmdstat_")] = calls.get(name.removeprefix("cmdstat_"), 0) + value["calls"]
    return calls


async def test_a_groups_keys_share_a_slot_groups_spread_and_listing_never_scans(
        redis_cluster: RedisCluster, key_prefix: str) -> None:
    adapter = RedisAdapter(redis_cluster.url, key_prefix)
    await adapter.start(lambda event: None)
    try:
        groups = [f"g{n}" for n in range(30)]
        for stream in ("s1", "s2:{odd}"):
            for group in groups:
                await adapter.set(ItemRef(stream, group, "i"), 1)
        keys = adapter.keys
        for stream, group in (("s1", "g1"), ("s2:{odd}", "g}x")):
            slots = {key_slot(key) for key in (*keys.group_keys(stream, group), keys.channel(stream, group))}
            assert len(slots) == 1, f"keys of {stream}/{group} span slots {slots}"
        owners = {redis_cluster.primary_for_slot(key_slot(keys.items("s1", group))) for group in groups}
        assert len(owners) == 3, "thirty groups should land on every primary"
        for node in redis_cluster.nodes:
            with redis_cluster.client(node.port) as client:
                client.config_resetstat()
        assert await adapter.list_groups("s1") == groups
        assert await adapter.list_all() == {"s1": sorted(groups), "s2:{odd}": sorted(groups)}
        assert await adapter.list_items("s1", "g7") == [1]
        calls = _command_calls(redis_cluster)
        assert "keys" not in calls and "scan" not in calls, calls
        for group in groups:
            await adapter.delete(ItemRef("s1", group, "i"))
        assert await adapter.list_groups("s1") == []
        assert list(await adapter.list_all()) == ["s2:{odd}"]
    finally:
        await adapter.close()


async def test_one_sharded_subscription_per_watched_group_on_its_owner(
        redis_cluster: RedisCluster, key_prefix: str) -> None:
    first, second = (RedisAdapter(redis_cluster.url, key_prefix) for _ in range(2))
    for adapter in (first, second):
        await adapter.start(lambda event: None)
    try:
        await _one_sharded_subscription(first, second, redis_cluster)
    finally:
        await first.close()
        await second.close()


async def _one_sharded_subscription(first: RedisAdapter, second: RedisAdapter, redis_cluster: RedisCluster) -> None:
    channel = first.keys.channel("s", "g:*")
    owner = redis_cluster.primary_for_slot(key_slot(channel))

    def subscribers() -> int:
        with redis_cluster.client(owner) as client:
            reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return int(reply[1])

    await first.watch("s", "g:*")
    await second.watch("s", "g:*")
    assert subscribers() == 2
    await first.unwatch("s", "g:*")
    await wait_until(lambda: subscribers() == 1, timeout(2))


async def test_a_slot_moved_under_a_live_engine_is_followed_and_reported_as_a_gap(
        make_redis_cluster: Callable[..., RedisCluster], key_prefix: str) -> None:
    cluster = make_redis_cluster()
    metrics = EngineMetrics()
    store = await Store("redis", RedisAdapter(cluster.url, key_prefix, metrics=metrics)).start()
    writer = await Store("redis", RedisAdapter(cluster.url, key_prefix)).start()
    try:
        adapter = _adapter(store)
        slot = key_slot(adapter.keys.items("s", "g"))
        await store.adapter.watch("s", "g")
        acknowledged: dict[str, int] = {}
        stop = asyncio.Event()

        async def write() -> None:
            n = 0
            while not stop.is_set():
                with contextlib.suppress(AdapterError):
                    await writer.adapter.set(ItemRef("s", "g", f"i{n}"), n)
                    acknowledged[f"i{n}"] = n
                n += 1
                await asyncio.sleep(0.002)

        task = asyncio.create_task(write())
        await wait_until(lambda: len(acknowledged) >= 20)
        old = cluster.primary_for_slot(slot)
        target = next(node.port for node in cluster.nodes if node.role == "primary" and node.port != old)
        await asyncio.to_thread(cluster.migrate_slot, slot, target)
        before = len(acknowledged)
        await wait_until(lambda: len(acknowledged) >= before + 20, timeout(10))
        await wait_until(lambda: ("s", "g") in store.gaps, timeout(10))  # the new owner's channel: a fresh sync
        stop.set()
        await task
        count = len(store.delivered)
        last = await writer.adapter.set(ItemRef("s", "g", "last"), -1)
        await store.events(count + 1)
        assert store.delivered[-1] == last.event  # events flow again, from the slot's new owner
        items = await writer.adapter.list_items("s", "g")
        assert sorted(items) == sorted([*acknowledged.values(), -1])
        assert metrics.redis_slot_map_changes >= 1  # /metrics: streamhub_redis_slot_map_changes_total
    finally:
        await store.adapter.close()
        await writer.adapter.close()


async def test_a_primary_killed_under_load_loses_no_acknowledged_write(
        make_redis_cluster: Callable[..., RedisCluster], key_prefix: str) -> None:
    cluster = make_redis_cluster(replicas_per_primary=1, durable=True)
    options: dict[str, Any] = {"durable_replicas": 1, "timeout": 1.0}
    writer = RedisAdapter(cluster.url, key_prefix, **options)
    watcher = await Store("redis", RedisAdapter(cluster.url, key_prefix, **options)).start()
    await writer.start(lambda event: None)
    try:
        groups = [f"g{n}" for n in range(9)]
        for group in groups:
            await watcher.adapter.watch("s", group)
        acknowledged: dict[tuple[str, str], int] = {}
        failures: list[str] = []
        stop = asyncio.Event()

        async def write(lane: int) -> None:
            n = 0
            while not stop.is_set():
                group = groups[(lane + n) % len(groups)]
                try:
                    await writer.set(ItemRef("s", group, f"w{lane}-{n}"), n)
                    acknowledged[(group, f"w{lane}-{n}")] = n
                except AdapterError as exc:
                    assert exc.temporary, exc.message
                    failures.append(exc.message)
                    await asyncio.sleep(0.02)
                n += 1

        tasks = [asyncio.create_task(write(lane)) for lane in range(8)]
        await wait_until(lambda: len(acknowledged) >= 300, timeout(10))
        victim = cluster.primary_for_slot(key_slot(writer.keys.items("s", "g0")))
        cluster.kill(victim)
        started = time.monotonic()
        await asyncio.to_thread(cluster.wait_failover, victim, timeout(20))
        # the promoted replica has no replica of its own, so durable writes to its slots are refused (not
        # acknowledged unprotected) until the old primary is back, as its replica
        await asyncio.to_thread(cluster.restart, victim)
        before = sum(group == "g0" for group, _ in acknowledged)
        await wait_until(lambda: sum(group == "g0" for group, _ in acknowledged) >= before + 30, timeout(20))
        recovered = time.monotonic() - started
        stop.set()
        await asyncio.gather(*tasks)
        assert failures, "killing a primary under load should have failed some writes"
        missing = [key for key, n in acknowledged.items()
                   if await writer.get(ItemRef("s", *key)) != (True, n)]
        assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        await wait_until(lambda: ("s", "g0") in watcher.gaps, timeout(10))  # subscribers re-synced
        assert await writer.health() is None
        assert recovered < timeout(15), f"writes resumed only after {recovered:.1f}s"
    finally:
        await writer.close()
        await watcher.adapter.close()


async def test_seeds_are_asked_in_turn_so_one_dead_seed_does_not_stop_a_start(
        redis_cluster: RedisCluster, key_prefix: str) -> None:
    live = redis_cluster.url.removeprefix("redis+cluster://")
    adapter = RedisAdapter(f"redis+cluster://127.0.0.1:{free_port()},{live}", key_prefix)
    await adapter.start(lambda event: None)
    try:
        await adapter.set(ItemRef("s", "g", "i"), 1)
        assert await adapter.get(ItemRef("s", "g", "i")) == (True, 1)
        assert await adapter.health() is None
    finally:
        await adapter.close()


def test_a_cluster_url_names_its_seeds() -> None:
    assert seeds("redis+cluster://u:p@10.0.0.1:7000,node-b,[::1]:7002", "x") == [
        ("10.0.0.1", 7000), ("node-b", 6379), ("::1", 7002)]
    for bad in ("redis+cluster://h:port", "redis+cluster://h:7000,,h2", "redis+cluster://h:70000"):
        with pytest.raises(ConfigError) as refused:
            seeds(bad, "the url")
        assert refused.value.args[0].startswith("redis_url the url: ")


async def test_an_unreachable_seed_fails_start_fast_naming_the_url() -> None:
    adapter = RedisAdapter(f"redis+cluster://user:secret@127.0.0.1:{free_port()}", "x:")
    started = time.monotonic()
    with pytest.raises(AdapterError) as failure:
        await adapter.start(lambda event: None)
    assert time.monotonic() - started < 2
    assert failure.value.temporary
    assert "127.0.0.1" in failure.value.message and "secret" not in failure.value.message
    await adapter.close()
