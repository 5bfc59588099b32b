"""The todo app's worker, written with streamhub's SDK: the documentation's headline example made real.

Todos live in ``todos/<userId>/<todo id>`` with the id inside the value (the browser client's ``live`` helper
names snapshot values by it). HTTP routes on the REST port create, complete/rename and delete them; every write is
pushed by the engine to the pages subscribed to that user's group. A ``stream`` trigger on ``todos`` logs each
change and keeps ``todo_stats/<userId>/summary`` = ``{total, done}`` up to date, which the page also shows live.
``todo-auth`` is the stream port's auth function: it checks the token ``run.py`` gave the page and puts the name it
holds in the connection's ``presence`` info, which is how every page shows who else has the list open.

Run: python examples/todo/worker.py   (engine at $STREAMHUB_URL, default ws://127.0.0.1:49134)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import signal
import time
import uuid
from collections import defaultdict
from typing import Any

from streamhub.sdk import Client, StreamEvent, UpdateOp

client = Client(os.environ.get("STREAMHUB_URL", "ws://127.0.0.1:49134"), name="todo")
# run.py signs each page's token with the same secret (a fresh one per run unless TODO_SECRET is set).
SECRET = os.environ.get("TODO_SECRET", "").encode()

MAX_TITLE = 200
_stats_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


class BadRequest(Exception):
    """Input the client must fix; answered as 400 with the message."""


def _http(status: int, body: Any) -> dict[str, Any]:
    return {"status_code": status, "body": body}


def _text(source: Any, field: str, where: str) -> str:
    value = source.get(field) if isinstance(source, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{where}.{field} is required (a non-empty string)")
    if len(value) > MAX_TITLE:
        raise BadRequest(f"{where}.{field} is longer than {MAX_TITLE} characters")
    return value.strip()


def _user_id(request: Any) -> str:
    """The group of a request: ``userId`` from the JSON body, else from the query string."""
    body = request.get("body")
    if isinstance(body, dict) and "userId" in body:
        return _text(body, "userId", "body")
    return _text(request.get("query_params") or {}, "userId", "query")


def _ref(user_id: str, todo_id: str) -> dict[str, str]:
    return {"stream_name": "todos", "group_id": user_id, "item_id": todo_id}


async def _guarded(handler: Any, request: Any) -> dict[str, Any]:
    """Run a route handler, turning bad input into a 400 that says what is wrong."""
    try:
        result: dict[str, Any] = await handler(request)
        return result
    except BadRequest as exc:
        return _http(400, {"error": str(exc)})


async def _create(request: Any) -> dict[str, Any]:
    body = request.get("body")
    user_id, title = _text(body, "userId", "body"), _text(body, "title", "body")
    todo_id = uuid.uuid4().hex[:12]
    todo = {"id": todo_id, "title": title, "completed": False, "createdAt": int(time.time() * 1000)}
    await client.call("stream.set", {**_ref(user_id, todo_id), "data": todo})  # pushed to every subscriber
    return _http(201, {"id": todo_id})


async def _update(request: Any) -> dict[str, Any]:
    user_id, todo_id = _user_id(request), request["path_params"]["id"]
    body = request.get("body") or {}
    ops = []
    if "completed" in body:
        if not isinstance(body["completed"], bool):
            raise BadRequest("body.completed must be true or false")
        ops.append(UpdateOp.set("completed", body["completed"]))
    if "title" in body:
        ops.append(UpdateOp.set("title", _text(body, "title", "body")))
    if not ops:
        raise BadRequest("body needs completed or title")
    if await client.call("stream.get", _ref(user_id, todo_id)) is None:
        return _http(404, {"error": f"todo {todo_id} not found for user {user_id}"})
    result = await client.call("stream.update", {**_ref(user_id, todo_id), "ops": ops})
    return _http(200, result["new_value"])


async def _delete(request: Any) -> dict[str, Any]:
    user_id, todo_id = _user_id(request), request["path_params"]["id"]
    result = await client.call("stream.delete", _ref(user_id, todo_id))
    if not result or result.get("old_value") is None:
        return _http(404, {"error": f"todo {todo_id} not found for user {user_id}"})
    return _http(200, {"id": todo_id})


def token_name(token: Any) -> str | None:
    """The name a token made by run.py's ``sign`` holds (``<base64url name>.<hmac>``), or None if it is not one."""
    if not SECRET or not isinstance(token, str) or token.count(".") != 1:
        return None
    encoded, mac = token.split(".")
    expected = hmac.new(SECRET, encoded.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:
        return None


@client.function("todo-auth", description="stream port auth: a token from run.py -> the page's name")
async def todo_auth(request: Any) -> Any:
    """Admit pages with a token signed by run.py; ``presence`` is the part of the context other pages see."""
    name = token_name((request.get("query_params") or {}).get("token", [None])[0])
    if name is None:
        return {"unauthorized": True}
    return {"context": {"name": name, "presence": {"name": name}}}


@client.function("create-todo-http", description="POST /todos {userId, title} -> {id}",
                 triggers=[{"type": "http", "config": {"path": "/todos", "method": "POST"}}])
async def create_todo_http(request: Any) -> Any:
    return await _guarded(_create, request)


@client.function("update-todo-http", description="PATCH /todos/:id {userId, completed?, title?} -> the todo",
                 triggers=[{"type": "http", "config": {"path": "/todos/:id", "method": "PATCH"}}])
async def update_todo_http(request: Any) -> Any:
    return await _guarded(_update, request)


@client.function("delete-todo-http", description="DELETE /todos/:id?userId=... -> {id}",
                 triggers=[{"type": "http", "config": {"path": "/todos/:id", "method": "DELETE"}}])
async def delete_todo_http(request: Any) -> Any:
    return await _guarded(_delete, request)


@client.function("on-todo-change", triggers=[{"type": "stream", "config": {"stream_name": "todos"}}])
async def on_todo_change(event: StreamEvent) -> None:
    """Log the change, then recount the user's summary (the engine already pushed the change to the pages)."""
    user_id = event.group_id or ""
    title = event.data.get("title", "") if isinstance(event.data, dict) else ""
    print(f"todo {event.event_type} {user_id}/{event.id} {title!r}", flush=True)
    # One recount at a time per user: the last one reads the state after the last change, so the summary ends right.
    async with _stats_locks[user_id]:
        todos = await client.call("stream.list", {"stream_name": "todos", "group_id": user_id}) or []
        done = sum(1 for todo in todos if isinstance(todo, dict) and todo.get("completed"))
        await client.call("stream.set", {"stream_name": "todo_stats", "group_id": user_id,
                                         "item_id": "summary", "data": {"total": len(todos), "done": done}})


async def main() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # leave cleanly: the engine drops our routes and triggers at once
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with client:
        print("todo worker ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
