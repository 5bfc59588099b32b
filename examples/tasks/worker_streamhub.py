"""The tasks worker, written with streamhub's SDK.

Tasks live in ``tasks/<board>/<task id>``; browsers subscribe to ``tasks/<board>`` and see every change live.
A stream trigger keeps per-board counters in ``task_stats/<board>/summary``, and a join trigger keeps private
boards (``private-*``) closed to subscribers. ``worker_iii.py`` is the same worker written with the published
``iii-sdk``; both pass tests/examples/test_tasks_example.py.

Run: python examples/tasks/worker_streamhub.py   (engine at $STREAMHUB_URL, default ws://127.0.0.1:49134)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from streamhub.sdk import Client, StreamEvent, StreamhubError, UpdateOp

client = Client(os.environ.get("STREAMHUB_URL", "ws://127.0.0.1:49134"), name="tasks")


@client.function("tasks::create", description="Create a task on a board")
async def create(event: Any) -> Any:
    task_id = event.get("id") or uuid.uuid4().hex[:8]
    task = {"id": task_id, "title": event["title"], "done": False, "version": 1}
    await client.call("stream.set", {"stream_name": "tasks", "group_id": event["board"], "item_id": task_id,
                                     "data": task})
    return {"id": task_id}


@client.function("tasks::complete", description="Mark a task done")
async def complete(event: Any) -> Any:
    ref = {"stream_name": "tasks", "group_id": event["board"], "item_id": event["id"]}
    if await client.call("stream.get", ref) is None:
        raise StreamhubError(f"task {event['id']} not found on board {event['board']}", code="task_not_found")
    result = await client.call("stream.update", {**ref, "ops": [UpdateOp.set("done", True),
                                                                UpdateOp.increment("version", 1)]})
    return result["new_value"]


@client.function("tasks::on_change", triggers=[{"type": "stream", "config": {"stream_name": "tasks"}}])
async def on_change(event: StreamEvent) -> None:
    if event.event.create:
        counter = "created"
    elif event.event.update and event.event.update.data.get("done"):
        counter = "completed"
    else:
        return
    await client.call("stream.update", {"stream_name": "task_stats", "group_id": event.group_id,
                                        "item_id": "summary", "ops": [UpdateOp.increment(counter, 1)]})


@client.function("tasks::on_join", triggers=[{"type": "stream_join", "config": {"stream_name": "tasks"}}])
async def on_join(event: Any, context: Any) -> Any:
    return {"unauthorized": event.group_id.startswith("private-")}


async def main() -> None:
    async with client:
        print("tasks worker ready", flush=True)
        await client.run_forever()


if __name__ == "__main__":
    asyncio.run(main())
