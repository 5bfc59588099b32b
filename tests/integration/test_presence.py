"""Presence over real sockets, on one engine with each store (memory, file, Redis).

Clients join with ``"presence": true`` and get, after their join's ``sync``, a presence ``sync`` and then ``join`` /
``leave`` events; ``stream.presence`` / ``stream.presence_count`` answer on the worker port and the ``presence``
request frame on the stream port (failing closed through the join guards).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streamhub.config import REDIS_ADAPTER, AdapterConfig, EngineConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker

STREAMS = ["memory", "file", pytest.param("redis", marks=pytest.mark.redis)]


def adapter_config(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AdapterConfig:
    if kind == "memory":
        return AdapterConfig()
    if kind == "file":
        return AdapterConfig(store_method="file_based", file_path=str(tmp_path / "data"))
    server = request.getfixturevalue("redis_server")
    return AdapterConfig(class_name=REDIS_ADAPTER, redis_url=server.url,
                         key_prefix=request.getfixturevalue("key_prefix"))


@contextlib.asynccontextmanager
async def engine(config: EngineConfig) -> AsyncIterator[tuple[Server, TestWorker]]:
    """An engine whose auth function admits ``?name=X`` with context ``{"presence": {"name": X}, "secret": ...}``."""
    async def auth(data: Any) -> Any:
        names = data["query_params"].get("name")
        info: Any = {"name": names[0]} if names else None
        if names and names[0] == "big":
            info = {"name": "x" * 300}
        return {"context": {"presence": info, "secret": "token-123"}}

    async with running(replace(config, stream=replace(config.stream, auth_function="auth::check"))) as srv, \
            TestWorker(worker_url(srv)) as worker:
        await worker.register("auth::check", auth)
        await worker.call("stream.list_all", {})
        yield srv, worker


@pytest.fixture(params=STREAMS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> EngineConfig:
    return make_config(adapter=adapter_config(request.param, request, tmp_path), max_presence_info_bytes=100)


def url(srv: Server, name: str) -> str:
    return f"{stream_url(srv)}?name={name}"


def presence(frame: dict[str, Any]) -> dict[str, Any]:
    assert frame["type"] == "stream" and frame["event"]["type"] == "presence", frame
    assert "offset" not in frame and frame["id"] is None
    event: dict[str, Any] = frame["event"]
    return event


async def joined(client: Subscriber, group: str = "g", **join: Any) -> tuple[str, dict[str, Any]]:
    """Join with presence; return the subscription id and its presence sync (which must follow the join's sync)."""
    sub_id = await client.join("s", group, presence=True, **join)
    first = await client.next()
    assert first["event"]["type"] == "sync" and first["subscriptionId"] == sub_id, first
    sync = await client.next()
    assert sync["subscriptionId"] == sub_id
    event = presence(sync)
    assert event["action"] == "sync"
    return sub_id, event


async def quiet(client: Subscriber, wait: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        frame = await client.next(wait=wait)
        raise AssertionError(f"unexpected frame {frame}")


async def test_members_count_and_events(config: EngineConfig) -> None:
    async with engine(config) as (srv, worker), Subscriber(url(srv, "ann")) as ann, \
            Subscriber(url(srv, "bob")) as bob, Subscriber(url(srv, "cid")) as cid:
        ann_sub, sync = await joined(ann)
        assert sync["count"] == 1 and "truncated" not in sync
        [me] = sync["members"]
        assert me["info"] == {"name": "ann"}  # the presence field only: never the rest of the context
        assert (me["subscription_ids"], me["item_ids"]) == ([ann_sub], [None])
        assert isinstance(me["joined_at"], int)

        bob_item = await bob.join("s", "g", item="x")  # no presence: a member, but gets no presence frames
        assert (await bob.next())["event"]["type"] == "sync"
        join = presence(await ann.next())
        assert join["action"] == "join"
        assert (join["member"]["info"], join["member"]["item_ids"]) == ({"name": "bob"}, ["x"])
        bob_group = await bob.join("s", "g")  # a second subscription: still one member, no event
        assert (await bob.next())["event"]["type"] == "sync"
        await quiet(ann)

        answer = await worker.call("stream.presence", {"stream_name": "s", "group_id": "g"})
        assert answer["count"] == 2
        by_name = {member["info"]["name"]: member for member in answer["members"]}
        assert sorted(by_name["bob"]["subscription_ids"]) == sorted([bob_item, bob_group])
        assert await worker.call("stream::presence_count", {"stream_name": "s", "group_id": "g"}) == {"count": 2}
        assert await worker.call("stream::presence", {"stream_name": "s", "group_id": "other"}) == {
            "members": [], "count": 0}

        await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "x", "data": 1})
        assert (await ann.next())["event"] == {"type": "create", "data": 1}  # data events still flow
        assert (await bob.next())["event"]["type"] == "create"
        assert (await bob.next())["event"]["type"] == "create"  # both of bob's subscriptions match
        await quiet(bob)

        await bob.leave("s", "g", bob_item)  # not its last subscription: no event
        await quiet(ann)
        await bob.leave("s", "g", bob_group)
        leave = presence(await ann.next())
        assert leave["action"] == "leave" and leave["member"]["subscription_ids"] == [bob_group]

        await cid.join("s", "g", item="y")
        assert presence(await ann.next())["action"] == "join"
        await cid.__aexit__(None, None, None)  # disconnect: the member leaves
        leave = presence(await ann.next())
        assert (leave["action"], leave["member"]["info"]) == ("leave", {"name": "cid"})
        assert await worker.call("stream.presence_count", {"stream_name": "s", "group_id": "g"}) == {"count": 1}
        await quiet(bob)


async def test_presence_request_fails_closed_through_the_join_guards(config: EngineConfig) -> None:
    refusing = {"on": False}

    async def guard(data: Any) -> Any:
        return {"unauthorized": refusing["on"]}

    async with engine(config) as (srv, worker), Subscriber(url(srv, "ann")) as ann, \
            Subscriber(url(srv, "eve")) as eve:
        await worker.register("guard", guard)
        await worker.trigger("stream_join", "guard", {})
        await worker.call("stream.list_all", {})
        await joined(ann)
        await eve.send({"type": "presence", "data": {"requestId": "r1", "streamName": "s", "groupId": "g"}})
        answer = await eve.next()  # every guard admits: answered
        assert (answer["type"], answer["requestId"], answer["count"]) == ("presence", "r1", 1)
        assert answer["members"][0]["info"] == {"name": "ann"}

        refusing["on"] = True
        await eve.send({"type": "presence", "data": {"requestId": "r2", "streamName": "s", "groupId": "g"}})
        refused = await eve.next()
        assert refused["type"] == "error" and refused["requestId"] == "r2"
        assert (refused["error"]["code"], refused["error"]["reason"]) == ("unauthorized", "refused")
        await ann.send({"type": "presence", "data": {"requestId": "r3", "streamName": "s", "groupId": "g"}})
        assert (await ann.next())["count"] == 1  # subscribed to the group: no guard asked
        await ann.send({"type": "presence", "data": {"requestId": "r4", "streamName": "s", "groupId": "h"}})
        assert (await ann.next())["error"]["code"] == "unauthorized"  # another group: the guards decide
        await ann.send({"type": "presence", "data": {"requestId": "r5", "streamName": "", "groupId": "h"}})
        bad = await ann.next()
        assert bad["type"] == "error" and bad["error"]["code"] == "invalid_name"


async def test_limits_truncate_the_list_and_drop_oversized_info(tmp_path: Path) -> None:
    config = make_config(max_presence_members=2, max_presence_info_bytes=100)
    async with engine(config) as (srv, worker), Subscriber(url(srv, "big")) as big, \
            Subscriber(url(srv, "b")) as b, Subscriber(url(srv, "c")) as c:
        for client in (big, b):
            await client.join("s", "g")
            await client.next()
        _, sync = await joined(c)
        assert (sync["count"], len(sync["members"]), sync["truncated"]) == (3, 2, True)
        answer = await worker.call("stream.presence", {"stream_name": "s", "group_id": "g"})
        assert (answer["count"], len(answer["members"]), answer["truncated"]) == (3, 2, True)
        assert answer["members"][0]["info"] is None  # 300 bytes of info, over max_presence_info_bytes


async def test_a_resumed_join_gets_its_replay_then_a_fresh_presence_sync(config: EngineConfig) -> None:
    async with engine(config) as (srv, worker), Subscriber(url(srv, "ann")) as ann:
        sub_id = await ann.join("s", "g", presence=True)
        epoch = (await ann.next())["position"]["epoch"]
        presence(await ann.next())
        await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": 1})
        seen = await ann.next()
        await ann.leave("s", "g", sub_id)
        await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "b", "data": 2})
        await ann.join("s", "g", sub_id=sub_id, presence=True, position={"epoch": epoch, "offset": seen["offset"]})
        recovered = await ann.next()
        assert recovered["event"]["type"] == "sync" and recovered["recovered"] is True
        assert (await ann.next())["event"] == {"type": "create", "data": 2}
        sync = presence(await ann.next())  # after the replay; presence events take no offsets
        assert (sync["action"], sync["count"]) == ("sync", 1)
