"""examples/tasks: the worker written with streamhub's SDK and the same worker written with the published iii-sdk
pass one test, against a real engine, with the worker as a real process."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamhub.sdk import CallError, Client, StreamEvent, SubscriptionError
from streamhub.transport.server import Server
from tests.conftest import stream_url, worker_url
from tests.helpers import timeout

EXAMPLES = Path(__file__).parents[2] / "examples" / "tasks"


@pytest.fixture(params=["worker_streamhub.py", "worker_iii.py"])
async def tasks_worker(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[None]:
    url = worker_url(server)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / request.param), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "STREAMHUB_URL": url, "III_URL": url})
    assert proc.stdout is not None
    output: list[bytes] = []
    try:
        async with asyncio.timeout(timeout(20)):
            while not (line := await proc.stdout.readline()).startswith(b"tasks worker ready"):
                output.append(line)
                assert line, b"".join(output).decode()
        yield
    finally:
        proc.terminate()
        await proc.wait()


async def test_tasks_worker(server: Server, tasks_worker: None) -> None:
    events: asyncio.Queue[StreamEvent] = asyncio.Queue()
    async with Client(worker_url(server), stream_url=stream_url(server), call_timeout=timeout(5)) as client:
        board = client.stream.subscribe("tasks", "b1", events.put_nowait)
        assert (await board.wait_synced(timeout(5))).data == []
        created = await client.call("tasks::create", {"board": "b1", "title": "milk"})
        done = await client.call("tasks::complete", {"board": "b1", "id": created["id"]})
        assert done == {"id": created["id"], "title": "milk", "done": True, "version": 2}
        changes = [await asyncio.wait_for(events.get(), timeout(5)) for _ in range(3)][1:]
        assert [(e.event_type, e.data["done"]) for e in changes] == [("create", False), ("update", True)]

        stats = client.stream.subscribe("task_stats", "b1", item_id="summary")
        async with asyncio.timeout(timeout(5)):
            async for event in stats:
                if event.data == {"created": 1, "completed": 1}:
                    break

        with pytest.raises(CallError, match="task nope not found on board b1"):
            await client.call("tasks::complete", {"board": "b1", "id": "nope"})
        with pytest.raises(SubscriptionError) as refused:
            await client.stream.subscribe("tasks", "private-x").wait_synced(timeout(5))
        assert refused.value.code == "unauthorized"
