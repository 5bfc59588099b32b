"""The SDK subscriber after a lost connection resumes from its position: the missed events, in order, marked as
replayed; or, when the engine cannot vouch for them (log too short, engine restarted), a fresh snapshot.

The network is a ``TcpProxy`` the test cuts and reopens, so the test decides when the subscriber can come back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.memory import MemoryAdapter
from streamhub.adapters.redis import RedisAdapter
from streamhub.core.positions import LogLimits
from streamhub.sdk import Backoff, Position, StreamClient, StreamEvent, Subscription, SubscriptionError
from streamhub.transport.server import Server
from tests.adapters.conftest import make_adapter
from tests.browser.proxy import TcpProxy
from tests.conftest import make_config, worker_url
from tests.helpers import TestWorker, timeout, wait_until
from tests.process import EngineProcess
from tests.redis_server import RedisServer

FAST = Backoff(initial=0.02, maximum=0.1)
MISSED = 500


def item(n: int) -> dict[str, Any]:
    return {"stream_name": "s", "group_id": "g", "item_id": f"i{n}"}



async def make_changes(worker: TestWorker, count: int) -> list[tuple[str, str | None]]:
    """``count`` changes of every kind, one after another; the (type, item) each must produce."""
    expected: list[tuple[str, str | None]] = []
    for n in range(count):
        if n % 5 == 3:
            await worker.call("stream.send", {"stream_name": "s", "group_id": "g", "type": "ping", "data": n})
            expected.append(("event", None))
        elif n % 5 == 4:
            await worker.call("stream.delete", item(n - 4))
            expected.append(("delete", f"i{n - 4}"))
        else:
            await worker.call("stream.set", {**item(n), "data": n})
            expected.append(("create", f"i{n}"))
    return expected


def apply(state: dict[str, Any], event: StreamEvent) -> None:
    """What an application does with the events of a group subscription."""
    if event.event_type == "sync":
        state.clear()
        state.update((f"i{value}", value) for value in event.data)
    elif event.event_type in ("create", "update"):
        state[str(event.id)] = event.data
    elif event.event_type == "delete":
        state.pop(str(event.id), None)


async def stored(worker: TestWorker) -> dict[str, Any]:
    return {f"i{v}": v for v in await worker.call("stream.list", {"stream_name": "s", "group_id": "g"})}


@contextlib.asynccontextmanager
async def proxied_engine(adapter: StreamAdapter) -> AsyncIterator[tuple[Server, TcpProxy]]:
    """An in-process engine on ``adapter`` and a proxy in front of its stream port."""
    srv = Server(make_config(), adapter=adapter)
    await srv.start()
    net = TcpProxy(srv.stream_port)
    await net.start()
    try:
        yield srv, net
    finally:
        await net.close()
        await srv.close()


@pytest.fixture
async def proxied(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Server, TcpProxy]]:
    """The store of ``request.param`` (memory when not parametrized), behind a proxy."""
    async with proxied_engine(make_adapter(getattr(request, "param", "memory"), request, tmp_path)) as pair:
        yield pair


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def short_log(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Server, TcpProxy]]:
    """A store whose change log keeps 3 changes per group, behind a proxy."""
    limits = LogLimits(size=3)
    adapter: StreamAdapter = MemoryAdapter(limits)
    if request.param == "redis":
        adapter = RedisAdapter(request.getfixturevalue("redis_server").url, request.getfixturevalue("key_prefix"),
                               limits=limits)
    async with proxied_engine(adapter) as pair:
        yield pair


async def watch(streams: StreamClient, seen: list[StreamEvent]) -> Subscription:
    sub = streams.subscribe("s", "g", seen.append)
    await sub.wait_synced(timeout(5))
    return sub


EVERY_STORE = pytest.mark.parametrize(
    "proxied", ["memory", "file", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)


@EVERY_STORE
async def test_dropped_connection_resumes_with_exactly_the_missed_events(proxied: tuple[Server, TcpProxy]) -> None:
    srv, net = proxied
    async with TestWorker(worker_url(srv)) as worker, StreamClient(net.url, backoff=FAST) as streams:
        await worker.call("stream.set", {**item(-1), "data": -1})
        seen: list[StreamEvent] = []
        sub = await watch(streams, seen)
        before = sub.position
        assert before is not None and seen[0]["position"] == before.to_wire() and seen[0].data == [-1]

        net.blocked = True
        net.sever()
        expected = await make_changes(worker, MISSED)
        assert len(seen) == 1  # really cut off: nothing arrived meanwhile
        net.blocked = False

        await wait_until(lambda: len(seen) == 1 + MISSED)
        replayed = seen[1:]
        assert [(e.event_type, e.id) for e in replayed] == expected
        assert [e["offset"] for e in replayed] == list(range(before.offset + 1, before.offset + 1 + MISSED))
        assert all(e.replayed for e in replayed)
        assert sub.last_sync is not None and sub.last_sync["recovered"] is True  # not handed out: no snapshot
        assert sub.position == Position(before.epoch, before.offset + MISSED)
        state: dict[str, Any] = {}
        for event in seen:
            apply(state, event)
        assert state == await stored(worker)

        await worker.call("stream.set", {**item(MISSED), "data": MISSED})
        await wait_until(lambda: len(seen) == 2 + MISSED)
        assert (seen[-1]["offset"], seen[-1].replayed) == (before.offset + MISSED + 1, False)
        assert net.accepted >= 2


async def test_log_too_short_gives_a_fresh_snapshot(short_log: tuple[Server, TcpProxy]) -> None:
    srv, net = short_log
    async with TestWorker(worker_url(srv)) as worker, StreamClient(net.url, backoff=FAST) as streams:
        await make_changes(worker, 3)
        seen: list[StreamEvent] = []
        sub = await watch(streams, seen)
        before = sub.position
        net.blocked = True
        net.sever()
        await make_changes(worker, 10)  # more changes than the log keeps
        net.blocked = False

        await wait_until(lambda: len(seen) == 2)
        await asyncio.sleep(0.05)
        assert len(seen) == 2  # the snapshot alone: no partial replay
        fresh = seen[1]
        assert fresh.event_type == "sync" and fresh["recovered"] is False and not fresh.replayed
        assert before is not None and sub.position == Position(before.epoch, before.offset + 10)
        assert {f"i{v}": v for v in fresh.data} == await stored(worker)


async def test_client_cut_off_as_slow_resumes_from_its_position(proxied: tuple[Server, TcpProxy]) -> None:
    srv, net = proxied
    async with TestWorker(worker_url(srv)) as worker, StreamClient(net.url, backoff=FAST) as streams:
        seen: list[StreamEvent] = []
        await watch(streams, seen)
        assert srv.clients is not None
        (conn,) = srv.clients.connections.values()
        net.blocked = True  # new connections only: the 1013 close still travels the open one
        conn.outbox.cut_off()  # what the engine does to a client whose output backs up
        await wait_until(lambda: net.accepted >= 2)  # the subscriber tried to come back
        expected = await make_changes(worker, 5)
        net.blocked = False
        await wait_until(lambda: len(seen) == 6)
        assert [(e.event_type, e.id, e.replayed) for e in seen[1:]] == [(*change, True) for change in expected]


async def test_slow_consumer_is_rejoined_from_its_position(proxied: tuple[Server, TcpProxy]) -> None:
    srv, net = proxied
    async with TestWorker(worker_url(srv)) as worker, StreamClient(net.url, backoff=FAST) as streams:
        release = asyncio.Event()
        seen: list[StreamEvent] = []

        async def slow(event: StreamEvent) -> None:
            await release.wait()
            seen.append(event)

        sub = streams.subscribe("s", "g", slow, max_queue=4)
        synced = await sub.wait_synced(timeout(5))
        expected = await make_changes(worker, 30)
        release.set()
        await wait_until(lambda: len(seen) == 31)
        await asyncio.sleep(0.05)
        assert seen[0] is synced and len(seen) == 31  # one snapshot, then every change once
        assert [(e.event_type, e.id) for e in seen[1:]] == expected
        assert [e["offset"] for e in seen[1:]] == list(range(synced["position"]["offset"] + 1,
                                                           synced["position"]["offset"] + 31))
        assert any(e.replayed for e in seen)  # it fell behind and the engine replayed what it skipped
        assert sub.last_sync is not None and sub.last_sync["recovered"] is True
        assert net.accepted == 1  # on the same connection


async def test_engine_killed_with_durable_store_gives_a_new_epoch_and_fresh_snapshot(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    await engine.start()
    net = TcpProxy(engine.stream_port)
    await net.start()
    try:
        async with TestWorker(engine.worker_url) as worker:
            await make_changes(worker, 5)
        async with StreamClient(net.url, backoff=FAST) as streams:
            seen: list[StreamEvent] = []
            sub = await watch(streams, seen)
            before = sub.position
            net.blocked = True
            engine.kill()
            assert await engine.stop() == -9
            net.sever()
            await engine.start()  # same ports, same durable store: the log was in memory
            async with TestWorker(engine.worker_url) as worker:
                await worker.call("stream.delete", item(0))
                await worker.call("stream.set", {**item(7), "data": 7})
                net.blocked = False
                await wait_until(lambda: len(seen) == 2)
                fresh = seen[1]
                assert fresh.event_type == "sync" and fresh["recovered"] is False
                assert before is not None and sub.position is not None and sub.position.epoch != before.epoch
                assert {f"i{v}": v for v in fresh.data} == await stored(worker) == {"i1": 1, "i2": 2, "i7": 7}
                await worker.call("stream.set", {**item(8), "data": 8})
                await wait_until(lambda: len(seen) == 3)
                assert (seen[2].id, seen[2].replayed) == ("i8", False)
    finally:
        await net.close()
        await engine.stop()


@pytest.mark.redis
async def test_join_the_engine_could_not_answer_is_retried(tmp_path: Path, key_prefix: str) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    adapter = RedisAdapter(redis.url, key_prefix, timeout=0.3, connect_timeout=0.3)
    try:
        async with proxied_engine(adapter) as (_, net), StreamClient(net.url, backoff=FAST) as streams:
            redis.kill()  # the snapshot cannot be read: the engine answers the join with an error
            sub = streams.subscribe("s", "g")
            with pytest.raises(SubscriptionError, match="no sync within"):
                await sub.wait_synced(0.8)
            redis.start()
            assert (await sub.wait_synced(timeout(10))).data == []  # joined again, on the same connection
            assert net.accepted == 1
    finally:
        redis.kill()
