"""Stream functions over the worker port, and the todo flow the documentation shows, over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from streamhub.transport.server import Server
from tests.conftest import stream_url, worker_url
from tests.helpers import CallFailed, Subscriber, TestWorker

TODO = {"stream_name": "todos", "group_id": "user_123", "item_id": "todo_1"}


async def test_todo_flow_subscriber_sees_create_update_delete_in_order(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub, TestWorker(worker_url(server)) as worker:
        await sub.join("todos", "user_123")
        sync = await sub.next()
        assert sync["event"] == {"type": "sync", "data": []}
        assert (sync["streamName"], sync["groupId"], sync["id"]) == ("todos", "user_123", None)

        created = await worker.call("stream.set", {**TODO, "data": {"title": "Buy milk", "completed": False}})
        assert created == {"old_value": None, "new_value": {"title": "Buy milk", "completed": False}}
        updated = await worker.call("stream::update", {**TODO, "ops": [
            {"type": "set", "path": "completed", "value": True},
            {"type": "increment", "path": "version", "by": 1}]})
        assert updated["new_value"] == {"title": "Buy milk", "completed": True, "version": 1}
        deleted = await worker.call("stream.delete", TODO)
        assert deleted == {"old_value": {"title": "Buy milk", "completed": True, "version": 1}}

        events = [await sub.next() for _ in range(3)]
        assert [e["event"]["type"] for e in events] == ["create", "update", "delete"]
        assert events[0]["event"]["data"] == {"title": "Buy milk", "completed": False}
        assert events[1]["event"]["data"]["completed"] is True
        assert events[2]["event"]["data"]["version"] == 1
        assert all(e["id"] == "todo_1" and e["type"] == "stream" for e in events)
        assert all(isinstance(e["timestamp"], int) for e in events)


async def test_get_list_groups_and_all_both_spellings(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        for group, item in [("g1", "a"), ("g1", "b"), ("g2", "a")]:
            await worker.call("stream::set", {"stream_name": "s:x", "group_id": group, "item_id": item,
                                              "data": {"id": item, "g": group}})
        assert await worker.call("stream.get", {"stream_name": "s:x", "group_id": "g1", "item_id": "b"}) == {
            "id": "b", "g": "g1"}
        assert await worker.call("stream::get", {"stream_name": "s:x", "group_id": "g1", "item_id": "zz"}) == (
            "<no result>")
        assert await worker.call("stream.list", {"stream_name": "s:x", "group_id": "g1"}) == [
            {"id": "a", "g": "g1"}, {"id": "b", "g": "g1"}]
        assert sorted(await worker.call("stream::list_groups", {"stream_name": "s:x"})) == ["g1", "g2"]
        assert await worker.call("stream.list_all", {}) == {
            "stream": [{"id": "s:x", "groups": ["g1", "g2"]}], "count": 1}
        again = await worker.call("stream.set", {"stream_name": "s:x", "group_id": "g1", "item_id": "a", "data": 1})
        assert again == {"old_value": {"id": "a", "g": "g1"}, "new_value": 1}
        assert await worker.call("stream.delete", {"stream_name": "s:x", "group_id": "g9", "item_id": "a"}) == {
            "old_value": None}


async def test_send_reaches_group_and_matching_item_subscribers(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub, TestWorker(worker_url(server)) as worker:
        await sub.join("chat", "room1")
        await sub.join("chat", "room1", item="m1")
        assert (await sub.next())["event"]["type"] == "sync"
        assert (await sub.next())["event"]["type"] == "sync"
        assert await worker.call("stream.send", {"stream_name": "chat", "group_id": "room1",
                                                 "event_type": "typing", "data": {"who": "ann"}}) is None
        frame = await sub.next()
        assert frame["event"] == {"type": "event", "event": {"type": "typing", "data": {"who": "ann"}}}
        assert frame["id"] is None
        await worker.call("stream::send", {"stream_name": "chat", "group_id": "room1", "type": "seen",
                                           "id": "m1", "data": 1})
        both = [await sub.next(), await sub.next()]  # one per matching subscription
        assert [f["event"]["event"]["type"] for f in both] == ["seen", "seen"]
        with pytest.raises(asyncio.TimeoutError):
            await sub.next(wait=0.2)


@pytest.mark.parametrize(("payload", "field"), [
    ({"group_id": "g", "item_id": "i", "data": 1}, "stream_name"),
    ({"stream_name": "", "group_id": "g", "item_id": "i", "data": 1}, "stream_name"),
    ({"stream_name": "s", "group_id": "g\x00", "item_id": "i", "data": 1}, "group_id"),
    ({"stream_name": "s", "group_id": "g", "item_id": "x" * 300, "data": 1}, "item_id"),
    ({"stream_name": "s", "group_id": "g", "item_id": 5, "data": 1}, "item_id"),
    ({"stream_name": "s", "group_id": "g", "item_id": "i"}, "data"),
])
async def test_invalid_set_names_the_field(server: Server, payload: dict[str, object], field: str) -> None:
    async with TestWorker(worker_url(server)) as worker:
        with pytest.raises(CallFailed) as failure:
            await worker.call("stream.set", payload)
        assert field in str(failure.value.message)
        assert await worker.call("stream.list_all", {}) == {"stream": [], "count": 0}


async def test_failing_update_names_op_and_leaves_item_untouched(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub, TestWorker(worker_url(server)) as worker:
        await worker.call("stream.set", {**TODO, "data": {"title": "x", "count": 1}})
        await sub.join("todos", "user_123")
        assert (await sub.next())["event"]["type"] == "sync"
        with pytest.raises(CallFailed) as failure:
            await worker.call("stream.update", {**TODO, "ops": [
                {"type": "increment", "path": "count", "by": 1},
                {"type": "increment", "path": "title", "by": 1}]})
        assert failure.value.code == "increment.not_number"
        assert "ops[1]" in str(failure.value.message)
        assert await worker.call("stream.get", TODO) == {"title": "x", "count": 1}
        with pytest.raises(asyncio.TimeoutError):
            await sub.next(wait=0.2)


async def test_unknown_function_is_a_clear_error(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        with pytest.raises(CallFailed) as failure:
            await worker.call("nope::missing", {})
        assert failure.value.code == "function_not_found"
        assert "nope::missing" in str(failure.value.message)


async def test_concurrent_increments_lose_nothing(server: Server) -> None:
    async with TestWorker(worker_url(server)) as a, TestWorker(worker_url(server)) as b:
        ref = {"stream_name": "counters", "group_id": "g", "item_id": "c"}
        op = {**ref, "ops": [{"type": "increment", "path": "n", "by": 1}]}
        await asyncio.gather(*(w.call("stream.update", op) for w in (a, b) for _ in range(50)))
        assert await a.call("stream.get", ref) == {"n": 100}
