"""After the engine restarts, the SDK comes back by itself: registrations, subscriptions, fresh snapshots."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streamhub.sdk import Backoff, Client, ConnectionLost, NotConnected, StreamEvent
from tests.helpers import timeout, wait_until
from tests.process import EngineProcess

FAST = Backoff(initial=0.05, maximum=0.3)



async def test_engine_restart_restores_functions_triggers_and_subscriptions(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    await engine.start()
    worker = Client(engine.worker_url, stream_url=engine.stream_url, backoff=FAST, call_timeout=timeout(10))
    caller = Client(engine.worker_url, stream_url=engine.stream_url, backoff=FAST, call_timeout=timeout(10))
    started = asyncio.Event()
    changes: list[StreamEvent] = []
    events: list[StreamEvent] = []

    @worker.function("todos::count", triggers=[{"type": "stream", "config": {"stream_name": "todos"}}])
    async def count(event: StreamEvent) -> None:
        changes.append(event)

    @worker.function("hang")
    async def hang(event: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    try:
        await worker.connect()
        await caller.connect()
        await caller.call("stream.set", {"stream_name": "todos", "group_id": "u1", "item_id": "a", "data": 1})
        sub = caller.stream.subscribe("todos", "u1", events.append)
        await sub.wait_synced(timeout(5))
        in_flight = asyncio.create_task(caller.call("hang", {}))
        await asyncio.wait_for(started.wait(), timeout(5))

        engine.kill()
        with pytest.raises(ConnectionLost, match=r"hang: connection to .* lost while the call was in flight"):
            await in_flight
        # Made during the outage: waits for the reconnect, then runs.
        outage_call = asyncio.create_task(caller.call(
            "stream.set", {"stream_name": "notes", "group_id": "u1", "item_id": "n", "data": "x"}))
        with pytest.raises(NotConnected, match=r"no connection to .* within 0.2 s"):
            await caller.call("stream.list_all", {}, timeout=0.2)  # never sent: safe to retry
        assert not outage_call.done()
        await engine.start()
        await outage_call

        await wait_until(lambda: worker.connected)
        await worker.call("stream.list_all", {})  # the engine has processed the worker's re-registrations
        await wait_until(lambda: [e.event_type for e in events] == ["sync", "sync"])  # re-joined, fresh snapshot
        await caller.call("stream.set", {"stream_name": "todos", "group_id": "u1", "item_id": "c", "data": 3})
        await wait_until(lambda: [e.data for e in changes] == [1, 3])
        await wait_until(lambda: [e.event_type for e in events] == ["sync", "sync", "create"])
        assert await worker.call("todos::count", {"direct": True}) is None  # re-registered function
        assert await caller.call("stream.get", {"stream_name": "notes", "group_id": "u1", "item_id": "n"}) == "x"
    finally:
        await caller.close()
        await worker.close()
        await engine.stop()
    assert [(e.event_type, e.data) for e in events] == [("sync", [1]), ("sync", [1]), ("create", 3)]
