"""The SDK's stream subscriber against a real engine: snapshots, live events, both event shapes, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamhub.errors import InvalidName
from streamhub.sdk import Client, StreamClient, StreamEvent, SubscriptionError, UpdateOp
from streamhub.transport.server import Server
from tests.conftest import make_config, stream_url, worker_url
from tests.helpers import timeout


@pytest.fixture
async def client(server: Server) -> AsyncIterator[Client]:
    async with Client(worker_url(server), stream_url=stream_url(server), call_timeout=timeout(5)) as c:
        yield c


def item(item_id: str, group: str = "u1") -> dict[str, Any]:
    return {"stream_name": "todos", "group_id": group, "item_id": item_id}


async def collect(queue: asyncio.Queue[StreamEvent], count: int) -> list[StreamEvent]:
    return [await asyncio.wait_for(queue.get(), timeout(5)) for _ in range(count)]


async def test_group_subscription_gets_snapshot_then_every_change(client: Client) -> None:
    await client.call("stream.set", {**item("t0"), "data": {"title": "old"}})
    events: asyncio.Queue[StreamEvent] = asyncio.Queue()
    sub = client.stream.subscribe("todos", "u1", events.put_nowait)
    sync = await sub.wait_synced(timeout(5))
    assert sync.event_type == "sync" and sync.data == [{"title": "old"}] and sync.id is None
    await client.call("stream.set", {**item("t1"), "data": {"title": "milk", "completed": False}})
    await client.call("stream.update", {**item("t1"), "ops": [UpdateOp.set("completed", True)]})
    await client.call("stream.delete", item("t0"))
    await client.call("stream.send", {"stream_name": "todos", "group_id": "u1", "event_type": "ping",
                                      "data": {"n": 1}})
    first, create, update, delete, custom = await collect(events, 5)
    assert first is sync
    assert create.event.create is not None and create.event.create.data == {"title": "milk", "completed": False}
    assert update.event.update is not None and update.event.update.data["completed"] is True
    assert update.id == "t1" and update["event"] == {"type": "update", "data": {"title": "milk", "completed": True}}
    assert delete.event_type == "delete" and delete.event.delete is not None and delete.data == {"title": "old"}
    assert custom.event_type == "event" and custom.event.event is not None
    assert custom.event.event.event_type == "ping" and custom.data == {"n": 1}
    assert create.stream_name == "todos" and create.group_id == "u1" and create.timestamp
    sub.unsubscribe()
    await client.call("stream.set", {**item("t2"), "data": 2})
    await asyncio.sleep(0.05)
    assert events.empty() and not sub.active


async def test_item_subscription_as_async_iterator(client: Client) -> None:
    async with client.stream.subscribe("todos", "u1", item_id="t1") as sub:
        await sub.wait_synced(timeout(5))
        await client.call("stream.set", {**item("t2"), "data": "other item"})
        await client.call("stream.set", {**item("t1"), "data": "mine"})
        await client.call("stream.send", {"stream_name": "todos", "group_id": "u1", "type": "no-id", "data": 0})
        await client.call("stream.send", {"stream_name": "todos", "group_id": "u1", "type": "to-t1", "id": "t1"})
        received = []
        async with asyncio.timeout(timeout(5)):
            async for event in sub:
                received.append((event.event_type, event.data))
                if len(received) == 3:
                    break
    assert received == [("sync", None), ("create", "mine"), ("event", None)]
    assert [e async for e in sub] == []  # ended by leaving the block


async def test_overlapping_subscriptions_each_get_one_copy(client: Client) -> None:
    group: asyncio.Queue[StreamEvent] = asyncio.Queue()
    one: asyncio.Queue[StreamEvent] = asyncio.Queue()
    subs = [client.stream.subscribe("todos", "u1", group.put_nowait),
            client.stream.subscribe("todos", "u1", one.put_nowait, item_id="t1"),
            client.stream.subscribe("todos", "u2", group.put_nowait)]
    for sub in subs:
        await sub.wait_synced(timeout(5))
    await client.call("stream.set", {**item("t1"), "data": 1})
    await client.call("stream.set", {**item("t9", "u2"), "data": 9})
    await client.call("stream.list_all", {})
    await asyncio.sleep(0.1)
    group_events = [(e.group_id, e.event_type, e.data) for e in await collect(group, group.qsize())]
    assert sorted(group_events, key=str) == sorted(
        [("u1", "sync", []), ("u2", "sync", []), ("u1", "create", 1), ("u2", "create", 9)], key=str)
    assert [(e.event_type, e.data) for e in await collect(one, one.qsize())] == [("sync", None), ("create", 1)]


async def test_unsubscribe_sends_leave(client: Client) -> None:
    left = asyncio.Event()
    await client.register_trigger("stream_leave", "on_leave", {"stream_name": "todos"})
    await client.register_function("on_leave", lambda event: left.set())
    sub = client.stream.subscribe("todos", "u1")
    await sub.wait_synced(timeout(5))
    sub.unsubscribe()
    await asyncio.wait_for(left.wait(), timeout(5))


async def test_invalid_names_fail_at_subscribe(client: Client) -> None:
    with pytest.raises(InvalidName, match=r"data.groupId"):
        client.stream.subscribe("todos", "")
    with pytest.raises(InvalidName, match=r"data.id"):
        client.stream.subscribe("todos", "u1", item_id="bad\x00id")


async def test_refused_join_ends_the_subscription(client: Client) -> None:
    await client.register_function("deny", lambda event: {"unauthorized": True})
    await client.register_trigger("stream:join", "deny", {"stream_name": "secret"})
    seen: list[StreamEvent] = []
    sub = client.stream.subscribe("secret", "g", seen.append)
    with pytest.raises(SubscriptionError) as refused:
        await sub.wait_synced(timeout(5))
    assert refused.value.code == "unauthorized" and not sub.active
    await asyncio.sleep(0.01)
    assert [e.event_type for e in seen] == ["unauthorized"]
    iterated = client.stream.subscribe("secret", "g")
    assert [e.event_type async for e in iterated] == ["unauthorized"]


async def test_slow_consumer_is_resynced_not_lost(client: Client) -> None:
    sub = client.stream.subscribe("todos", "u1", max_queue=3)
    await sub.wait_synced(timeout(5))
    for n in range(10):
        await client.call("stream.set", {**item(f"t{n}"), "data": n})
    state: list[Any] = []
    async with asyncio.timeout(timeout(5)):
        async for event in sub:
            if event.event_type == "sync":
                state = list(event.data)
            elif event.event_type == "create":
                state.append(event.data)
            if len(state) == 10:
                break
    assert state == list(range(10))


async def test_auth_context_reaches_join_handler_and_bad_token_is_refused() -> None:
    srv = Server(make_config(auth_function="auth::check"))
    await srv.start()
    try:
        async with Client(worker_url(srv), call_timeout=timeout(5)) as worker:
            @worker.function("auth::check")
            def check(request: Any) -> Any:
                tokens = request["query_params"].get("token", [])
                return {"context": {"user": "ann"}} if tokens == ["good"] else None

            contexts: list[Any] = []

            @worker.function("on_join", triggers=[{"type": "stream_join"}])
            def on_join(event: Any, context: Any) -> None:
                contexts.append(context)

            await worker.call("stream.list_all", {})
            async with StreamClient(f"{stream_url(srv)}?token=good") as streams:
                await streams.subscribe("todos", "u1").wait_synced(timeout(5))
            assert contexts == [{"user": "ann"}]
            async with StreamClient(f"{stream_url(srv)}?token=bad") as streams:
                refused = streams.subscribe("todos", "u1")
                with pytest.raises(SubscriptionError, match="401") as error:
                    await refused.wait_synced(timeout(5))
                assert error.value.code == "unauthorized"
                with pytest.raises(SubscriptionError):
                    await anext(refused)
    finally:
        await srv.close()
