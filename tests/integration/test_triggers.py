"""stream, join and leave triggers registered by a worker, fired by real writes and real subscriptions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from streamhub.transport.server import Server
from tests.conftest import stream_url, worker_url
from tests.helpers import Subscriber, TestWorker, timeout


async def test_stream_trigger_fires_with_wire_payload_filtered_by_group(server: Server) -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def on_change(event: Any) -> None:
        await seen.put(event)

    async with TestWorker(worker_url(server)) as backend, TestWorker(worker_url(server)) as writer:
        await backend.register("todos::on_change", on_change)
        await backend.trigger("stream", "todos::on_change", {"stream_name": "todos", "group_id": "u1"})
        await writer.call("stream.list_all", {})  # registration frames are processed in order before this
        await writer.call("stream.set", {"stream_name": "todos", "group_id": "u2", "item_id": "x", "data": 0})
        await writer.call("stream.set", {"stream_name": "todos", "group_id": "u1", "item_id": "a", "data": {"n": 1}})
        await writer.call("stream.delete", {"stream_name": "todos", "group_id": "u1", "item_id": "a"})
        first = await asyncio.wait_for(seen.get(), timeout(5))
        second = await asyncio.wait_for(seen.get(), timeout(5))
        assert first["type"] == "stream" and first["streamName"] == "todos" and first["groupId"] == "u1"
        assert first["event"] == {"type": "create", "data": {"n": 1}}
        assert second["event"] == {"type": "delete", "data": {"n": 1}}
        assert seen.empty()


async def test_condition_false_skips_handler(server: Server) -> None:
    handled: list[Any] = []

    async def condition(event: Any) -> bool:
        return bool(event["event"]["data"]["important"])

    async def handler(event: Any) -> None:
        handled.append(event["id"])

    async with TestWorker(worker_url(server)) as backend:
        await backend.register("cond", condition)
        await backend.register("handler", handler)
        await backend.trigger("stream", "handler", {"stream_name": "s", "condition_function_id": "cond"})
        await backend.call("stream.list_all", {})
        for item, important in [("a", False), ("b", True), ("c", False)]:
            await backend.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": item,
                                              "data": {"important": important}})
        await _until(lambda: handled == ["b"])
        await asyncio.sleep(0.1)
        assert handled == ["b"]


async def test_slow_and_failing_triggers_never_delay_delivery(server: Server) -> None:
    release = asyncio.Event()

    async def slow(event: Any) -> None:
        await release.wait()

    async def failing(event: Any) -> None:
        raise RuntimeError("boom")

    async with TestWorker(worker_url(server)) as backend, Subscriber(stream_url(server)) as sub:
        await backend.register("slow", slow)
        await backend.register("failing", failing)
        await backend.trigger("stream", "slow", {"stream_name": "s"})
        await backend.trigger("stream", "failing", {"stream_name": "s"})
        await sub.join("s", "g")
        await sub.next()
        started = time.monotonic()
        for i in range(20):
            await backend.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": str(i), "data": i})
        received = [(await sub.next())["event"]["data"] for _ in range(20)]
        assert received == list(range(20))
        assert time.monotonic() - started < timeout(2)
        release.set()
        await _until(lambda: server.engine.runner.failures >= 20)
        assert await backend.call("stream.list", {"stream_name": "s", "group_id": "g"}) == list(range(20))


async def test_join_and_leave_triggers_get_context_and_can_refuse(server: Server) -> None:
    joins: list[Any] = []
    leaves: list[Any] = []

    async def on_join(event: Any) -> Any:
        joins.append(event)
        return {"unauthorized": event["group_id"] == "secret"}

    async def on_leave(event: Any) -> None:
        leaves.append(event)

    async with TestWorker(worker_url(server)) as backend:
        await backend.register("on_join", on_join)
        await backend.register("on_leave", on_leave)
        await backend.trigger("stream_join", "on_join", {"stream_name": "chat"})
        await backend.trigger("stream:leave", "on_leave", {"stream_name": "chat"})
        await backend.call("stream.set", {"stream_name": "chat", "group_id": "secret", "item_id": "m", "data": 1})
        async with Subscriber(stream_url(server)) as sub:
            await sub.join("other", "g")  # join triggers filtered by stream_name: not called
            assert (await sub.next())["event"]["type"] == "sync"
            await sub.join("chat", "secret", sub_id="s1")
            refused = await sub.next()
            assert refused["event"] == {"type": "unauthorized", "reason": "refused"} and refused["groupId"] == "secret"
            assert refused["subscriptionId"] == "s1"
            await backend.call("stream.set", {"stream_name": "chat", "group_id": "secret", "item_id": "m", "data": 2})
            await sub.join("chat", "open", sub_id="s2")
            assert (await sub.next())["event"] == {"type": "sync", "data": []}
        await _until(lambda: len(leaves) == 1)
    assert [j["group_id"] for j in joins] == ["secret", "open"]
    assert joins[1]["subscription_id"] == "s2" and joins[1]["stream_name"] == "chat" and joins[1]["id"] is None
    assert "connection_id" in joins[1] and joins[1]["context"] is None
    assert leaves[0]["subscription_id"] == "s2"


async def _until(predicate: Any, wait: float = 5.0) -> None:
    deadline = time.monotonic() + timeout(wait)
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)
