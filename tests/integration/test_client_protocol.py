"""The client WebSocket: bad frames, size limit, auth, slow consumers, URL forms."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from streamhub.transport.server import Server
from tests.conftest import make_config, stream_url, worker_url
from tests.helpers import RawClient, Subscriber, TestWorker


async def test_malformed_frames_get_error_frames_and_connection_stays_up(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub:
        assert sub.ws is not None
        await sub.ws.send_str("{not json")
        bad_json = await sub.next()
        assert bad_json["type"] == "error" and bad_json["error"]["code"] == "invalid_json"
        await sub.send({"type": "subscribe", "data": {}})
        unknown = await sub.next()
        assert unknown["error"]["code"] == "invalid_message" and "$.type" in unknown["error"]["message"]
        await sub.send({"type": "join", "data": {"subscriptionId": "s", "streamName": "x"}})
        missing = await sub.next()
        assert "groupId" in missing["error"]["message"]
        await sub.send({"type": "join", "data": {"subscriptionId": "s", "streamName": "x", "groupId": ""}})
        assert "data.groupId" in (await sub.next())["error"]["message"]
        await sub.ws.send_str("   ")  # empty frames are ignored
        await sub.join("x", "g")
        assert (await sub.next())["event"] == {"type": "sync", "data": []}


async def test_oversized_frame_closes_with_1009() -> None:
    srv = Server(make_config(max_message_size=1024))
    await srv.start()
    try:
        async with Subscriber(stream_url(srv)) as sub:
            assert sub.ws is not None
            await sub.ws.send_str("x" * 2048)
            assert await sub.wait_closed() == 1009
        async with Subscriber(stream_url(srv)) as other:  # the engine keeps serving others
            await other.join("s", "g")
            assert (await other.next())["event"]["type"] == "sync"
    finally:
        await srv.close()


async def test_item_subscription_and_url_form(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        await worker.call("stream.set", {"stream_name": "todos", "group_id": "u", "item_id": "a", "data": {"v": 1}})
        async with Subscriber(stream_url(server)) as item_sub, \
                Subscriber(f"{stream_url(server)}stream/todos/u/") as url_sub:
            await item_sub.join("todos", "u", item="a")
            assert (await item_sub.next())["event"] == {"type": "sync", "data": {"v": 1}}
            assert (await url_sub.next())["event"] == {"type": "sync", "data": [{"v": 1}]}
            await worker.call("stream.set", {"stream_name": "todos", "group_id": "u", "item_id": "b", "data": 2})
            await worker.call("stream.set", {"stream_name": "todos", "group_id": "u", "item_id": "a", "data": 3})
            assert (await item_sub.next())["event"] == {"type": "update", "data": 3}
            assert [(await url_sub.next())["id"] for _ in range(2)] == ["b", "a"]


async def test_answers_to_joins_echo_their_subscription_id(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub, TestWorker(worker_url(server)) as worker:
        await sub.join("s", "g", sub_id="first")
        await sub.join("s", "g", sub_id="second", position={"epoch": "gone", "offset": 3})
        await sub.join("s", "g", item="i", sub_id="item")
        answers = [await sub.next() for _ in range(3)]
        assert [(a["event"]["type"], a["subscriptionId"]) for a in answers] == [
            ("sync", "first"), ("sync", "second"), ("sync", "item")]
        await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 1})
        events = [await sub.next() for _ in range(3)]  # one copy per subscription, encoded once per group
        assert all("subscriptionId" not in e and e["event"]["type"] == "create" for e in events)


async def test_leave_stops_delivery(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub, TestWorker(worker_url(server)) as worker:
        sub_id = await sub.join("s", "g")
        await sub.next()
        await sub.leave("s", "g", sub_id)
        await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 1})
        await sub.join("s", "other")
        assert (await sub.next())["groupId"] == "other"  # nothing from "g" arrived before this sync


async def test_auth_refusal_is_401_and_context_reaches_join_triggers() -> None:
    srv = Server(make_config(auth_function="auth::check"))
    await srv.start()
    joins: list[Any] = []

    async def check(request: Any) -> Any:
        token = request["query_params"].get("token", [None])[0] or request["headers"].get("authorization")
        if token != "good":
            raise PermissionError("bad token")
        return {"user_id": "u1", "addr": request["addr"], "path": request["path"]}

    async def on_join(event: Any) -> None:
        joins.append(event)

    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(stream_url(srv))  # auth function not registered yet: refused
            assert refused.value.status == 401
            async with TestWorker(worker_url(srv)) as backend:
                await backend.register("auth::check", check)
                await backend.register("on_join", on_join)
                await backend.trigger("stream_join", "on_join", {})
                await backend.call("stream.list_all", {})
                with pytest.raises(aiohttp.WSServerHandshakeError) as bad:
                    await http.ws_connect(stream_url(srv) + "?token=bad")
                assert bad.value.status == 401
                async with Subscriber(stream_url(srv) + "?token=good") as sub:
                    await sub.join("s", "g")
                    assert (await sub.next())["event"]["type"] == "sync"
                async with Subscriber(stream_url(srv), headers={"Authorization": "good"},
                                      protocols=("Authorization", "good")) as sub2:
                    assert sub2.ws is not None and sub2.ws.protocol == "Authorization"
        assert joins[0]["context"]["user_id"] == "u1"
        assert joins[0]["context"]["addr"].startswith("127.0.0.1:")
    finally:
        await srv.close()


async def test_slow_consumer_is_cut_off_while_fast_one_keeps_receiving() -> None:
    srv = Server(make_config(max_pending_bytes=256 * 1024))
    await srv.start()
    payload = {"blob": "x" * 20000}
    slow = RawClient(srv.stream_port)
    try:
        async with Subscriber(stream_url(srv)) as fast, TestWorker(worker_url(srv)) as worker:
            await slow.connect()
            slow.send_text('{"type":"join","data":{"subscriptionId":"s","streamName":"s","groupId":"g"}}')
            await fast.join("s", "g")
            await fast.next()
            await asyncio.sleep(0.1)
            total = 600  # 12 MB: far more than the slow client's socket buffers plus the 256 KiB limit
            for i in range(total):
                await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": str(i),
                                                 "data": payload})
                assert (await fast.next())["id"] == str(i)
            assert srv.clients is not None
            clients = srv.clients
            for _ in range(500):  # the engine gives a client one grace period (1 s) over the bound
                if [c.outbox.closed for c in clients.connections.values()].count(True) == 1:
                    break
                await asyncio.sleep(0.01)
            assert [c.outbox.closed for c in clients.connections.values()] in ([True, False], [False, True])
            await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "after", "data": 1})
            assert (await fast.next())["id"] == "after"
            frames, close_code = await slow.read_until_close(10)
            assert close_code in (1008, 1013)
            assert frames < total + 1
    finally:
        slow.close()
        await srv.close()


async def test_engine_close_tells_clients_1001_at_once() -> None:
    srv = Server(make_config())
    await srv.start()
    async with Subscriber(stream_url(srv)) as sub:
        await sub.join("s", "g")
        await sub.next()
        closing = asyncio.create_task(srv.close())
        assert await sub.wait_closed(wait=1.0) == 1001
        await asyncio.wait_for(closing, 1.0)


async def test_heartbeat_drops_a_silent_peer_and_keeps_a_live_one() -> None:
    srv = Server(make_config(heartbeat_ms=200))
    await srv.start()
    silent = RawClient(srv.stream_port)  # reads nothing and never answers a ping, like a vanished laptop
    try:
        await silent.connect()
        silent.send_text('{"type":"join","data":{"subscriptionId":"s","streamName":"s","groupId":"g"}}')
        async with Subscriber(stream_url(srv)) as live:  # aiohttp answers pings by itself
            await live.join("s", "g")
            await live.next()
            assert srv.clients is not None
            for _ in range(200):
                if len(srv.clients.connections) == 1:
                    break
                await asyncio.sleep(0.01)
            assert len(srv.clients.connections) == 1  # the silent one is gone, its subscription released
            await asyncio.sleep(0.5)
            assert not live.closed.is_set()
            async with TestWorker(worker_url(srv)) as worker:
                await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 1})
            assert (await live.next())["event"]["type"] == "create"
    finally:
        silent.close()
        await srv.close()
