"""The tasks worker of worker_streamhub.py, written with the published ``iii-sdk`` (PyPI 0.25.0).

Same functions, same triggers, same stream layout; it runs against streamhub unchanged.

Run: python examples/tasks/worker_iii.py   (engine at $III_URL, default ws://127.0.0.1:49134)
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from iii import register_worker

worker = register_worker()


def create(data: dict[str, Any]) -> Any:
    task_id = data.get("id") or uuid.uuid4().hex[:8]
    task = {"id": task_id, "title": data["title"], "done": False, "version": 1}
    worker.trigger({"function_id": "stream::set", "payload": {
        "stream_name": "tasks", "group_id": data["board"], "item_id": task_id, "data": task}})
    return {"id": task_id}


def complete(data: dict[str, Any]) -> Any:
    ref = {"stream_name": "tasks", "group_id": data["board"], "item_id": data["id"]}
    if worker.trigger({"function_id": "stream::get", "payload": ref}) is None:
        raise LookupError(f"task {data['id']} not found on board {data['board']}")
    ops = [{"type": "set", "path": "done", "value": True}, {"type": "increment", "path": "version", "by": 1}]
    return worker.trigger({"function_id": "stream::update", "payload": {**ref, "ops": ops}})["new_value"]


def on_change(event: dict[str, Any]) -> None:
    change = event["event"]
    if change["type"] == "create":
        counter = "created"
    elif change["type"] == "update" and change["data"].get("done"):
        counter = "completed"
    else:
        return
    worker.trigger({"function_id": "stream::update", "payload": {
        "stream_name": "task_stats", "group_id": event["groupId"], "item_id": "summary",
        "ops": [{"type": "increment", "path": counter, "by": 1}]}})


def on_join(event: dict[str, Any]) -> Any:
    return {"unauthorized": event["group_id"].startswith("private-")}


worker.register_function("tasks::create", create, description="Create a task on a board")
worker.register_function("tasks::complete", complete, description="Mark a task done")
worker.register_function("tasks::on_change", on_change)
worker.register_function("tasks::on_join", on_join)
worker.register_trigger({"type": "stream", "function_id": "tasks::on_change", "config": {"stream_name": "tasks"}})
worker.register_trigger({"type": "stream:join", "function_id": "tasks::on_join", "config": {"stream_name": "tasks"}})
worker.trigger({"function_id": "stream::list_groups", "payload": {"stream_name": "tasks"}})  # registrations landed
print("tasks worker ready", flush=True)
threading.Event().wait()
