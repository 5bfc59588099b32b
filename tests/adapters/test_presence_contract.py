"""The presence contract (``adapters/presence.py``), run against every presence store: memory and Redis.

Redis runs both on a pipe of its own and on a started ``RedisAdapter``'s pipe (as the registry builds it: presence
scripts registered after that connection opened run through the EVAL fallback). Redis also runs with two stores on
one server (two engines), and with an engine that stops renewing its lease. All of it runs on a single server and on
a real 3-primary Redis Cluster (``ClusterPresence``; ``test_presence_cluster.py`` has what only a cluster needs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.presence import JOIN, LEAVE, Member, MemoryPresence, PresenceChange, PresenceStore
from streamhub.adapters.redis import RedisAdapter
from streamhub.adapters.redis_presence import RedisPresence
from streamhub.adapters.redis_presence_cluster import ClusterPresence
from streamhub.adapters.redis_shards import ShardedPipe
from streamhub.adapters.registry import build_adapter, build_presence
from streamhub.config import REDIS_ADAPTER, AdapterConfig
from streamhub.core.model import ItemRef
from tests.helpers import wait_until
from tests.redis_server import RedisServer


class Harness:
    """A started presence store plus the changes and gaps it delivered."""

    def __init__(self, store: PresenceStore) -> None:
        self.store = store
        self.changes: list[PresenceChange] = []
        self.gaps: list[tuple[str, str]] = []

    async def start(self) -> Harness:
        await self.store.start(self.changes.append, lambda stream, group: self.gaps.append((stream, group)))
        return self

    async def seen(self, count: int) -> list[tuple[str, str]]:
        """(action, connection) of the first ``count`` changes, waiting for them."""
        await wait_until(lambda: len(self.changes) >= count, 5)
        return [(change.action, change.member.connection_id) for change in self.changes[:count]]


def member(connection: str, *subs: str, joined_at: int = 1) -> Member:
    return Member(connection, subs or ("s1",), tuple(None for _ in subs or ("s1",)), joined_at, {"name": connection})


def make(kind: str, request: pytest.FixtureRequest, ttl: float = 15.0) -> PresenceStore:
    if kind == "memory":
        return MemoryPresence()
    prefix = request.getfixturevalue("key_prefix")
    if kind == "redis-cluster":
        return ClusterPresence(request.getfixturevalue("redis_cluster").url, prefix, ttl=ttl)
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisPresence(server.url, prefix, ttl=ttl)


async def shared(request: pytest.FixtureRequest, kind: str) -> tuple[RedisPresence, StreamAdapter]:
    """A presence store on the pipe of a started adapter (its connection already open)."""
    cluster = kind == "redis-cluster"
    url: str = request.getfixturevalue("redis_cluster" if cluster else "redis_server").url
    prefix = request.getfixturevalue("key_prefix")
    adapter = RedisAdapter(url, prefix)
    await adapter.start(lambda event: None)
    pipe = adapter.pipe
    if isinstance(pipe, ShardedPipe):
        return ClusterPresence(url, prefix, pipe=pipe), adapter
    return RedisPresence(url, prefix, pipe=pipe), adapter


REDIS = [pytest.param("redis", marks=pytest.mark.redis), pytest.param("redis-cluster", marks=pytest.mark.redis_cluster)]


@pytest.fixture(params=["memory", *REDIS, pytest.param("redis-shared", marks=pytest.mark.redis),
                        pytest.param("redis-cluster-shared", marks=pytest.mark.redis_cluster)])
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    adapter = None
    if request.param.endswith("-shared"):
        store, adapter = await shared(request, request.param.removesuffix("-shared"))
    else:
        store = make(request.param, request)
    harness = await Harness(store).start()
    try:
        yield harness
    finally:
        await harness.store.close()
        if adapter is not None:
            await adapter.close()


async def test_join_update_leave_are_announced_once_each_in_seq_order(presence: Harness) -> None:
    store = presence.store
    await store.watch("s", "g")
    await store.join("s", "g", member("a", joined_at=1))
    await store.join("s", "g", member("b", joined_at=2))
    await store.update("s", "g", member("a", "s1", "s2", joined_at=1))  # no event
    await store.join("s", "g", member("a", "s1", "s2", joined_at=1))  # already there: no event
    await store.leave("s", "g", member("b", joined_at=2))
    await store.leave("s", "g", member("nobody"))  # unknown: nothing
    assert await presence.seen(3) == [(JOIN, "a"), (JOIN, "b"), (LEAVE, "b")]
    await asyncio.sleep(0.1)
    assert len(presence.changes) == 3
    seqs = [change.seq for change in presence.changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert presence.changes[0].member == member("a", joined_at=1)  # the member as it was then
    roster = await store.members("s", "g", 10)
    assert (roster.members, roster.count) == ([member("a", "s1", "s2", joined_at=1)], 1)
    assert roster.seq == seqs[-1]  # the read reflects every change so far
    assert await store.count("s", "g") == 1
    assert await store.count("s", "other") == 0


async def test_members_are_cut_at_the_limit_with_an_exact_count(presence: Harness) -> None:
    for n in range(5):
        await presence.store.join("s", "g", member(f"c{n}", joined_at=n))
    roster = await presence.store.members("s", "g", 3)
    assert (len(roster.members), roster.count, roster.truncated) == (3, 5, True)
    assert len({m.connection_id for m in roster.members}) == 3
    assert (await presence.store.members("s", "g", 0)).members == []


async def test_groups_with_tricky_names_stay_apart(presence: Harness) -> None:
    names = [("a:b", "c"), ("a", "b:c"), ("*", "{x}"), ("ü", "1:2")]
    for n, (stream, group) in enumerate(names):
        await presence.store.join(stream, group, member(f"c{n}"))
    for n, (stream, group) in enumerate(names):
        assert [m.connection_id for m in (await presence.store.members(stream, group, 10)).members] == [f"c{n}"]


@pytest.mark.parametrize("kind", REDIS)
async def test_two_engines_see_each_others_members_and_changes(request: pytest.FixtureRequest, kind: str) -> None:
    one, two = Harness(make(kind, request)), Harness(make(kind, request))
    await one.start()
    await two.start()
    try:
        await two.store.watch("s", "g")
        await one.store.join("s", "g", member("a"))
        await two.store.join("s", "g", member("b"))
        assert await two.seen(2) == [(JOIN, "a"), (JOIN, "b")]
        assert (await one.store.members("s", "g", 10)).count == 2
        assert one.changes == []  # not watching: nothing delivered
        await one.store.close()  # a clean shutdown withdraws its members
        assert await two.seen(3) == [(JOIN, "a"), (JOIN, "b"), (LEAVE, "a")]
    finally:
        await two.store.close()


@pytest.mark.parametrize("kind", REDIS)
async def test_an_engine_that_stops_renewing_is_claimed_with_leaves(request: pytest.FixtureRequest, kind: str) -> None:
    dead, alive = make(kind, request, ttl=0.6), Harness(make(kind, request, ttl=0.6))
    assert isinstance(dead, RedisPresence)
    await Harness(dead).start()
    await alive.start()
    try:
        await alive.store.watch("s", "g")
        await dead.join("s", "g", member("a"))
        await dead.join("s", "h", member("a"))
        assert await alive.seen(1) == [(JOIN, "a")]
        assert dead._renewer is not None
        dead._renewer.cancel()  # as if killed: no more renewals, nothing withdrawn
        loop = asyncio.get_running_loop()
        stopped = loop.time()
        assert await alive.seen(2) == [(JOIN, "a"), (LEAVE, "a")]
        assert loop.time() - stopped < 0.6 + 0.3  # within the lease (plus scheduling slack)
        assert await alive.store.count("s", "h") == 0  # every group of the dead engine
    finally:
        dead._mine.clear()
        await dead.close()
        await alive.store.close()


def _command_clients(server: RedisServer) -> set[int]:
    """Ids of the server's connections that are not subscribed to anything (command connections)."""
    with server.client() as client:
        return {int(c["id"]) for c in client.client_list() if c["sub"] == "0" and c["psub"] == "0"
                and c["cmd"] != "client|list"}


@pytest.mark.redis
async def test_the_registry_puts_presence_on_the_adapters_connection(request: pytest.FixtureRequest) -> None:
    server: RedisServer = request.getfixturevalue("redis_server")
    config = AdapterConfig(class_name=REDIS_ADAPTER, redis_url=server.url,
                           key_prefix=request.getfixturevalue("key_prefix"))
    before = _command_clients(server)
    adapter = build_adapter(config)
    store = build_presence(config, 15.0, adapter)
    seen = Harness(store)
    await adapter.start(lambda event: None)
    await seen.start()
    try:
        await store.watch("s", "g")
        await adapter.watch("s", "g")  # both pub/sub connections now subscribed: not counted below
        await asyncio.gather(*(store.join("s", "g", member(f"c{n}")) for n in range(20)),
                             adapter.set(ItemRef("s", "g", "i"), 1))
        assert len(await seen.seen(20)) == 20
        assert (await store.members("s", "g", 100)).count == 20
        assert len(_command_clients(server) - before) == 1  # store and presence commands: one connection
    finally:
        await store.close()
        await adapter.close()
    assert _command_clients(server) - before == set()
