"""Gap-free delivery: offsets and positions on the wire, resume after a disconnect, no snapshot race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamhub.adapters.memory import MemoryAdapter
from streamhub.core.positions import LogLimits
from streamhub.transport.server import Server
from tests.adapters.conftest import make_adapter
from tests.conftest import make_config, stream_url, worker_url
from tests.helpers import RawClient, Subscriber, TestWorker, timeout
from tests.process import EngineProcess


def _set(i: int, group: str = "g", item: str | None = None) -> dict[str, Any]:
    return {"stream_name": "s", "group_id": group, "item_id": item or f"i{i}", "data": {"n": i}}


@pytest.fixture(params=["memory", "file", pytest.param("redis", marks=pytest.mark.redis)])
async def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    srv = Server(make_config(), adapter=make_adapter(request.param, request, tmp_path))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


async def test_events_carry_offsets_and_sync_carries_position(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub, TestWorker(worker_url(server)) as worker:
        await worker.call("stream.set", _set(1))
        await sub.join("s", "g")
        sync = await sub.next()
        assert sync["recovered"] is False and sync["position"]["offset"] == 1
        assert isinstance(sync["position"]["epoch"], str) and sync["event"]["data"] == [{"n": 1}]
        await worker.call("stream.set", _set(2))
        await worker.call("stream.send", {"stream_name": "s", "group_id": "g", "type": "ping", "data": None})
        await worker.call("stream.delete", _set(1))
        assert [(await sub.next())["offset"] for _ in range(3)] == [2, 3, 4]


async def test_resume_replays_exactly_the_missed_changes(any_server: Server) -> None:
    async with TestWorker(worker_url(any_server)) as worker:
        async with Subscriber(stream_url(any_server)) as sub:
            await sub.join("s", "g")
            await sub.next()
            await worker.call("stream.set", _set(0))
            last = await sub.next()
            epoch = (last["offset"], None)
        position = {"epoch": None, "offset": epoch[0]}
        async with Subscriber(stream_url(any_server)) as probe:  # learn the epoch the way a client does
            await probe.join("s", "g")
            position["epoch"] = (await probe.next())["position"]["epoch"]
        await asyncio.gather(*(worker.call("stream.set", _set(i)) for i in range(1, 501)))
        async with Subscriber(stream_url(any_server)) as back:
            await back.join("s", "g", position=position)
            sync = await back.next()
            assert sync["recovered"] is True and sync["position"]["offset"] == position["offset"] + 500
            assert "data" not in sync["event"]
            replayed = [await back.next() for _ in range(500)]
            assert [e["offset"] for e in replayed] == list(range(position["offset"] + 1, position["offset"] + 501))
            assert sorted(e["event"]["data"]["n"] for e in replayed) == list(range(1, 501))
            await worker.call("stream.set", _set(501))
            assert (await back.next())["offset"] == position["offset"] + 501
            with pytest.raises(asyncio.TimeoutError):
                await back.next(wait=0.2)


async def test_item_subscription_replays_only_its_item(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker, Subscriber(stream_url(server)) as sub:
        await sub.join("s", "g", item="x")
        first = await sub.next()
        for i in range(10):
            await worker.call("stream.set", _set(i, item="x" if i % 2 else "y"))
        resumed = Subscriber(stream_url(server))
        async with resumed:
            await resumed.join("s", "g", item="x", position=first["position"])
            sync = await resumed.next()
            assert sync["recovered"] is True and sync["id"] == "x"
            got = [await resumed.next() for _ in range(5)]
            assert [e["event"]["data"]["n"] for e in got] == [1, 3, 5, 7, 9]
            with pytest.raises(asyncio.TimeoutError):
                await resumed.next(wait=0.2)


async def test_log_too_short_or_other_epoch_gives_fresh_snapshot() -> None:
    srv = Server(make_config(), adapter=MemoryAdapter(LogLimits(size=100)))
    await srv.start()
    try:
        async with TestWorker(worker_url(srv)) as worker, Subscriber(stream_url(srv)) as sub:
            await sub.join("s", "g")
            start = (await sub.next())["position"]
            for i in range(150):
                await worker.call("stream.set", _set(i % 40))
            await sub.join("s", "g", position=start)
            for _ in range(150):
                await sub.next()  # the first subscription's live events
            fresh = await sub.next()
            assert fresh["recovered"] is False and fresh["position"]["offset"] == 150
            assert sorted(v["n"] for v in fresh["event"]["data"]) == list(range(40))
            await sub.join("s", "g", position={"epoch": "not-this-one", "offset": 150})
            other = await sub.next()
            while other["event"]["type"] != "sync":
                other = await sub.next()
            assert other["recovered"] is False and len(other["event"]["data"]) == 40
    finally:
        await srv.close()


async def test_no_snapshot_race_under_concurrent_writer(any_server: Server) -> None:
    """1,000 joins while a writer changes the group: every joiner sees every later change exactly once."""
    stop = asyncio.Event()

    async def write(worker: TestWorker) -> int:
        i = 0
        while not stop.is_set():
            await asyncio.gather(*(worker.call("stream.set", _item(i + k)) for k in range(5)))
            i += 5
            await asyncio.sleep(0.001)  # a steady writer, not a flood: the clients share this process's loop
        return i

    async def rejoin(sub: Subscriber, checker: SegmentChecker) -> None:
        for round_ in range(100):
            if round_:
                await sub.leave("s", "g", str(round_ - 1))
            await sub.join("s", "g", sub_id=str(round_))
            await checker.synced(round_ + 1)  # like a real client: the next rejoin after this sync

    async with TestWorker(worker_url(any_server)) as worker:
        subscribers = [Subscriber(stream_url(any_server)) for _ in range(10)]
        try:
            for sub in subscribers:
                await sub.__aenter__()
            checkers = [SegmentChecker(sub) for sub in subscribers]
            checking = [asyncio.create_task(checker.run()) for checker in checkers]
            writer = asyncio.create_task(write(worker))
            await asyncio.gather(*(rejoin(sub, checker) for sub, checker in zip(subscribers, checkers, strict=True)))
            stop.set()
            assert await writer >= 50  # the joins really raced with writes
            await worker.call("stream.send", {"stream_name": "s", "group_id": "g", "type": "end", "data": None})
            final = await worker.call("stream.list", {"stream_name": "s", "group_id": "g"})
            for state in await asyncio.gather(*checking):
                assert sorted(state.values(), key=lambda v: v["id"]) == sorted(final, key=lambda v: v["id"])
        finally:
            for sub in subscribers:
                await sub.__aexit__(None, None, None)


def _item(i: int) -> dict[str, Any]:
    item = f"i{i % 50}"
    return {"stream_name": "s", "group_id": "g", "item_id": item, "data": {"id": item, "n": i}}


class SegmentChecker:
    """Frames on one connection: sync, its events, next sync, ... Each segment must continue its sync's
    position without a gap or a repeat; the last one, applied to its snapshot, must give the final state."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub
        self.syncs = 0
        self.failure: BaseException | None = None

    async def synced(self, count: int) -> None:
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while self.syncs < count:
            assert self.failure is None, self.failure
            assert asyncio.get_running_loop().time() < deadline, f"sync {count} never came ({self.syncs} so far)"
            await asyncio.sleep(0.002)

    async def run(self) -> dict[str, Any]:
        try:
            return await self._check()
        except BaseException as exc:
            self.failure = exc
            raise

    async def _check(self) -> dict[str, Any]:
        expected = 0
        state: dict[str, Any] = {}
        while True:
            frame = await self.sub.next(wait=10)
            if frame["event"]["type"] == "sync":
                expected = frame["position"]["offset"] + 1
                state = {v["id"]: v for v in frame["event"]["data"]}
                self.syncs += 1
                continue
            assert frame["offset"] == expected, f"after sync {self.syncs}: offset {frame['offset']}, wanted {expected}"
            expected += 1
            if frame["event"]["type"] == "event":
                assert self.syncs == 100
                return state
            state[frame["id"]] = frame["event"]["data"]


async def test_kill_9_with_durable_store_gives_new_epoch_and_consistent_snapshot(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    await engine.start()
    async with TestWorker(engine.worker_url) as worker, Subscriber(engine.stream_url) as sub:
        await sub.join("s", "g")
        await sub.next()
        for i in range(20):
            await worker.call("stream.set", _item(i))
        last = [await sub.next() for _ in range(20)][-1]
        old_epoch = (await _probe_position(engine.stream_url))["epoch"]
    engine.kill()
    await engine.stop()
    await engine.start()
    try:
        async with Subscriber(engine.stream_url) as back:
            await back.join("s", "g", position={"epoch": old_epoch, "offset": last["offset"]})
            sync = await back.next()
            assert sync["recovered"] is False and sync["position"]["epoch"] != old_epoch
            assert sorted(v["n"] for v in sync["event"]["data"]) == list(range(20))
            async with TestWorker(engine.worker_url) as worker:
                await worker.call("stream.set", _item(20))
                event = await back.next()
                assert event["offset"] == sync["position"]["offset"] + 1
    finally:
        await engine.stop()


async def test_slow_consumer_cut_off_resumes_from_its_position() -> None:
    srv = Server(make_config(max_pending_bytes=256 * 1024))
    await srv.start()
    slow = RawClient(srv.stream_port)
    try:
        async with TestWorker(worker_url(srv)) as worker:
            await slow.connect()
            slow.send_text('{"type":"join","data":{"subscriptionId":"s","streamName":"s","groupId":"g"}}')
            await asyncio.sleep(0.1)
            for i in range(600):  # 12 MB for a client that does not read
                await worker.call("stream.set", {**_item(i), "data": {"id": f"i{i % 50}", "n": i, "pad": "x" * 20000}})
            _frames, close_code = await slow.read_until_close(10, keep=True)
            assert close_code == 1013
            got = [f for f in slow.frames if f["event"]["type"] != "sync"]
            position = {"epoch": slow.frames[0]["position"]["epoch"], "offset": got[-1]["offset"]}
            assert position["offset"] < 600
            async with Subscriber(stream_url(srv)) as back:
                await back.join("s", "g", position=position)
                sync = await back.next()
                assert sync["recovered"] is True
                rest = [await back.next(wait=10) for _ in range(600 - position["offset"])]
                assert [e["offset"] for e in rest] == list(range(position["offset"] + 1, 601))
    finally:
        slow.close()
        await srv.close()


async def _probe_position(url: str) -> dict[str, Any]:
    async with Subscriber(url) as probe:
        await probe.join("s", "g")
        position: dict[str, Any] = (await probe.next())["position"]
        return position
