"""Presence across real engine processes sharing one Redis: two and three engines, kill -9, Redis restart.

Members are told apart by their subscription ids (no auth function: ``info`` is null).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Subscriber, TestWorker, timeout
from tests.process import EngineProcess, redis_engine
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

TTL_MS = 1500


def engine(workdir: Path, url: str, prefix: str) -> EngineProcess:
    return redis_engine(workdir, url, prefix, f"presence_ttl_ms: {TTL_MS}")


async def started(tmp_path: Path, url: str, prefix: str, count: int) -> list[EngineProcess]:
    engines = [engine(tmp_path / f"engine-{n}", url, prefix) for n in range(count)]
    await asyncio.gather(*(e.start() for e in engines))
    return engines


async def stopped(engines: Iterable[EngineProcess]) -> None:
    await asyncio.gather(*(e.stop() for e in engines))


class Roster:
    """A presence subscriber's view: folds presence frames the way a client must (a sync replaces the list)."""

    def __init__(self, client: Subscriber) -> None:
        self.client = client
        self.members: dict[str, tuple[str, ...]] = {}  # connection id -> subscription ids
        self.syncs = 0
        self.frames: list[dict[str, Any]] = []

    async def until(self, wanted: set[tuple[str, ...]], wait: float = 10.0) -> float:
        """Read frames until the members' subscription ids are ``wanted``; returns when (monotonic)."""
        deadline = time.monotonic() + timeout(wait)
        while self.view() != wanted:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"members {self.view()}, expected {wanted}"
            self.fold(await self.client.next(wait=remaining))
        return time.monotonic()

    def view(self) -> set[tuple[str, ...]]:
        return {tuple(sorted(subs)) for subs in self.members.values()}

    def fold(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        event = frame.get("event", {})
        if event.get("type") != "presence":
            return
        if event["action"] == "sync":
            self.syncs += 1
            self.members = {m["connection_id"]: tuple(m["subscription_ids"]) for m in event["members"]}
        elif event["action"] == "join":
            self.members[event["member"]["connection_id"]] = tuple(event["member"]["subscription_ids"])
        else:
            self.members.pop(event["member"]["connection_id"], None)


async def subscribed(client: Subscriber, *, presence: bool = False, item: str | None = None, sub_id: str) -> str:
    await client.join("s", "g", item=item, presence=presence, sub_id=sub_id)
    return sub_id


@pytest.fixture
async def three(tmp_path: Path, redis_url: str, key_prefix: str) -> AsyncIterator[list[EngineProcess]]:
    engines = await started(tmp_path, redis_url, key_prefix, 3)
    try:
        yield engines
    finally:
        await stopped(engines)


async def test_three_engines_list_and_announce_every_member(three: list[EngineProcess]) -> None:
    a, b, c = three
    async with Subscriber(a.stream_url) as ann, Subscriber(b.stream_url) as bob, \
            Subscriber(c.stream_url) as cid, TestWorker(c.worker_url) as worker:
        view = Roster(ann)
        await subscribed(ann, presence=True, sub_id="ann")
        await view.until({("ann",)})
        await subscribed(bob, sub_id="bob-1")
        await subscribed(bob, item="x", sub_id="bob-2")  # a second subscription: the same member
        await subscribed(cid, item="y", sub_id="cid")
        assert [(await bob.next())["event"]["type"] for _ in range(2)] == ["sync", "sync"]  # both joins answered
        await view.until({("ann",), ("bob-1",), ("cid",)})
        answer = await worker.call("stream.presence", {"stream_name": "s", "group_id": "g"})
        assert answer["count"] == 3
        assert sorted(tuple(sorted(m["subscription_ids"])) for m in answer["members"]) == [
            ("ann",), ("bob-1", "bob-2"), ("cid",)]
        assert await worker.call("stream.presence_count", {"stream_name": "s", "group_id": "g"}) == {"count": 3}
        await cid.__aexit__(None, None, None)  # disconnect on engine C
        await view.until({("ann",), ("bob-1",)})
        joins = [f for f in view.frames if f["event"].get("action") == "join"]
        assert len(joins) == 2  # bob's second subscription announced nothing


async def test_kill_9_of_an_engine_removes_its_members_within_the_lease(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    a, b = await started(tmp_path, redis_url, key_prefix, 2)
    try:
        async with Subscriber(a.stream_url) as ann, Subscriber(b.stream_url) as bob, \
                Subscriber(b.stream_url) as cid, TestWorker(a.worker_url) as worker:
            view = Roster(ann)
            await subscribed(ann, presence=True, sub_id="ann")
            await subscribed(bob, sub_id="bob")
            await subscribed(cid, sub_id="cid")
            await view.until({("ann",), ("bob",), ("cid",)})
            b.kill()
            killed = time.monotonic()
            gone = await view.until({("ann",)})
            print(f"members of a killed engine gone after {(gone - killed) * 1000:.0f} ms (lease {TTL_MS} ms)")
            assert gone - killed < TTL_MS / 1000 + 0.5 * timeout(1)  # the lease, plus scheduling slack
            leaves = [f["event"]["member"]["subscription_ids"] for f in view.frames
                      if f["event"].get("action") == "leave"]
            assert sorted(leaves) == [["bob"], ["cid"]]
            assert await worker.call("stream.presence_count", {"stream_name": "s", "group_id": "g"}) == {"count": 1}
    finally:
        await stopped([a, b])


async def test_after_a_redis_restart_engines_announce_their_members_again(tmp_path: Path, key_prefix: str) -> None:
    redis = RedisServer(tmp_path / "redis")  # not durable: the restart loses every key
    redis.start()
    a, b = await started(tmp_path, redis.url, key_prefix, 2)
    try:
        async with Subscriber(a.stream_url) as ann, Subscriber(b.stream_url) as bob, \
                TestWorker(a.worker_url) as worker:
            view = Roster(ann)
            await subscribed(ann, presence=True, sub_id="ann")
            await subscribed(bob, sub_id="bob")
            await view.until({("ann",), ("bob",)})
            syncs = view.syncs
            redis.kill()
            await asyncio.sleep(0.3)
            redis.start()  # empty: every member is gone from Redis
            deadline = time.monotonic() + timeout(10)
            while view.syncs == syncs:  # the subscriber gets a fresh presence sync after the break
                view.fold(await ann.next(wait=deadline - time.monotonic()))
            await view.until({("ann",), ("bob",)})  # and both engines announce their members again
            deadline = time.monotonic() + timeout(10)
            while (await worker.call("stream.presence_count", {"stream_name": "s", "group_id": "g"}))["count"] != 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
    finally:
        await stopped([a, b])
        redis.kill()
