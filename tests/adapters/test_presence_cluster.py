"""What only presence on a Redis Cluster has to get right (``redis_presence_cluster.py``), on a real 3-primary
cluster: a sweep whose claimer dies midway is finished by another engine, each leave announced once; an engine
claimed while it was alive keeps its members although the sweep of its old id runs after it announced them again;
a join and a leave of one member racing each other end as the engine says.

The contract every presence store keeps runs on the cluster too, in ``test_presence_contract.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from streamhub.adapters.presence import JOIN, LEAVE
from streamhub.adapters.redis_presence_cluster import ClusterPresence
from streamhub.adapters.redis_shards import key_slot
from streamhub.adapters.registry import build_adapter, build_presence
from streamhub.config import REDIS_ADAPTER, AdapterConfig
from tests.adapters.test_presence_contract import Harness, member
from tests.helpers import timeout
from tests.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis_cluster

TTL = 0.6  # lease 0.45 s, renewed every 0.15 s


class DiesWhileSweeping(ClusterPresence):
    """Claims like any engine, then dies (its renewals stop) after removing ``removes`` members of the sweep."""

    def __init__(self, *args: Any, removes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.removes = removes
        self.died = asyncio.Event()

    async def _sweep(self, engine: str, fields: list[bytes]) -> int:
        await self._remove_members(engine, fields[:self.removes])
        self.died.set()
        raise asyncio.CancelledError  # ends the renewal task: nothing confirmed, nothing renewed any more


@pytest.fixture
def make(redis_cluster: RedisCluster, key_prefix: str) -> Callable[..., ClusterPresence]:
    def new(ttl: float = TTL, kind: type[ClusterPresence] = ClusterPresence, **options: Any) -> ClusterPresence:
        return kind(redis_cluster.url, key_prefix, ttl=ttl, **options)

    return new


@pytest.fixture
async def started() -> AsyncIterator[Callable[[ClusterPresence], Any]]:
    """Starts stores for the test; closes them after (a store "killed" by the test withdraws nothing then)."""
    stores: list[ClusterPresence] = []

    async def start(store: ClusterPresence) -> Harness:
        harness = await Harness(store).start()
        stores.append(store)
        return harness

    yield start
    for store in reversed(stores):
        if store._subscriber is not None:  # not closed by the test
            await store.close()


def kill(store: ClusterPresence) -> None:
    """As if the process died: no more renewals, and nothing withdrawn at close."""
    assert store._renewer is not None
    store._renewer.cancel()
    store._mine.clear()


async def pending_sweeps(store: ClusterPresence) -> int:
    count: int = await store._router.call(b"ZCARD", store.keys.presence_sweeps)
    return count


async def until_no_sweep(store: ClusterPresence) -> None:
    async with asyncio.timeout(timeout(5)):
        while await pending_sweeps(store):  # noqa: ASYNC110 (state in Redis: nothing to await)
            await asyncio.sleep(0.05)


async def test_a_sweep_whose_claimer_dies_midway_is_finished_by_another_engine(
        make: Callable[..., ClusterPresence], started: Callable[[ClusterPresence], Any]) -> None:
    watcher = await started(make(ttl=60.0))  # renews once, at start: never claims anything here
    groups = [("s", "b"), ("s", "g"), ("t", "x")]
    slots = watcher.store._router.slot_map
    assert slots is not None and len({slots.owner(key_slot(watcher.store.keys.presence_members(*g)))
                                      for g in groups}) == 3  # one group on each primary
    for group in groups:
        await watcher.store.watch(*group)
    dead = make()
    await started(dead)
    for n, group in enumerate(groups):
        await dead.join(*group, member(f"c{n}"))
    assert len(await watcher.seen(3)) == 3
    claimer = make(kind=DiesWhileSweeping, removes=1)
    await started(claimer)
    kill(dead)
    await asyncio.wait_for(claimer.died.wait(), timeout(5))
    assert await pending_sweeps(claimer) == 1  # claimed, one member removed, nothing confirmed

    alive = make()
    await started(alive)  # takes the sweep over once it is due (one lease after the claimer took it)
    assert sorted(await watcher.seen(6)) == sorted([(JOIN, "c0"), (JOIN, "c1"), (JOIN, "c2"),
                                                    (LEAVE, "c0"), (LEAVE, "c1"), (LEAVE, "c2")])
    await until_no_sweep(alive)
    assert alive.claimed == 2  # the claimer had removed one
    assert [await alive.count(*group) for group in groups] == [0, 0, 0]
    assert await alive._router.call(b"EXISTS", alive.keys.presence_sweep(dead.engine_id)) == 0
    await asyncio.sleep(0.2)
    assert len(watcher.changes) == 6  # each leave once


async def test_an_engine_claimed_while_alive_keeps_its_members_through_the_late_sweep(
        make: Callable[..., ClusterPresence], started: Callable[[ClusterPresence], Any]) -> None:
    watcher = await started(make(ttl=60.0))
    await watcher.store.watch("s", "g")
    cut_off = make()
    await started(cut_off)
    await cut_off.join("s", "g", member("a"))
    await cut_off.join("s", "g", member("b"))
    assert await watcher.seen(2) == [(JOIN, "a"), (JOIN, "b")]
    old_id = cut_off.engine_id
    assert cut_off._renewer is not None
    cut_off._renewer.cancel()  # cut off: its lease runs out while it lives
    claimer = make(kind=DiesWhileSweeping, removes=0)
    await started(claimer)
    await asyncio.wait_for(claimer.died.wait(), timeout(5))  # claimed it, removed nothing yet

    await cut_off._renew_once()  # back: its lease was gone, so it takes a new id and announces its members again
    assert cut_off.engine_id != old_id
    cut_off._renewer = asyncio.create_task(cut_off._renew_forever())
    alive = make()
    await started(alive)  # runs the old id's sweep once it is due
    await until_no_sweep(alive)
    assert alive.claimed == 0
    roster = await alive.members("s", "g", 10)
    assert sorted(m.connection_id for m in roster.members) == ["a", "b"]
    assert len(watcher.changes) == 2  # no leave, no second join
    await cut_off.close()  # its members leave under its new id
    assert sorted((await watcher.seen(4))[2:]) == [(LEAVE, "a"), (LEAVE, "b")]


async def test_a_join_and_a_leave_of_one_member_racing_end_as_the_engine_says(
        make: Callable[..., ClusterPresence], started: Callable[[ClusterPresence], Any]) -> None:
    store = make()
    await started(store)
    await asyncio.gather(store.join("s", "g", member("a")), store.leave("s", "g", member("a")))
    await asyncio.gather(store.leave("s", "g", member("b")), store.join("s", "g", member("b")))
    await asyncio.gather(*(store.join("s", f"g{n}", member(f"c{n}")) for n in range(10)),
                         *(store.leave("s", f"g{n}", member(f"c{n}")) for n in range(0, 10, 2)))
    assert [m.connection_id for m in (await store.members("s", "g", 10)).members] == ["b"]
    assert [await store.count("s", f"g{n}") for n in range(10)] == [n % 2 for n in range(10)]
    listed = await store._router.call(b"HKEYS", store._own)
    assert sorted(listed) == sorted(store._field(*key) for key in store._mine)
    assert not store._locks


async def test_the_registry_puts_presence_on_the_adapters_router(redis_cluster: RedisCluster, key_prefix: str) -> None:
    config = AdapterConfig(class_name=REDIS_ADAPTER, redis_url=redis_cluster.url, key_prefix=key_prefix)
    adapter = build_adapter(config)
    store = build_presence(config, 15.0, adapter)
    assert isinstance(store, ClusterPresence) and store._router is adapter.pipe  # type: ignore[attr-defined]
    seen = Harness(store)
    await adapter.start(lambda event: None)
    await seen.start()
    try:
        await store.watch("s", "g")
        await asyncio.gather(*(store.join("s", "g", member(f"c{n}")) for n in range(20)))
        assert len(await seen.seen(20)) == 20
        assert (await store.members("s", "g", 100)).count == 20
    finally:
        await store.close()
        await adapter.close()
