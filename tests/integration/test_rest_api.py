"""The REST API module over real HTTP: routing to http triggers, request/response shapes, errors, CORS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from streamhub.config import RestApiConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker


@pytest.fixture
async def api() -> AsyncIterator[Server]:
    config = replace(make_config(), rest_api=RestApiConfig(port=0, default_timeout_ms=500,
                                                           cors_allowed_origins=("http://app.test",)))
    srv = Server(config)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


def base(srv: Server) -> str:
    return f"http://127.0.0.1:{srv.rest_port}"


async def _ready(worker: TestWorker) -> None:
    await worker.call("stream.list_all", {})  # registrations before this call are processed


async def test_post_todos_creates_item_that_subscribers_see(api: Server) -> None:
    async def create_todo(request: Any) -> Any:
        body = request["body"]
        await backend.call("stream.set", {"stream_name": "todos", "group_id": body["userId"], "item_id": "t1",
                                          "data": {"id": "t1", "title": body["title"], "completed": False}})
        return {"id": "t1"}  # the documentation's handler returns the body itself

    async with TestWorker(worker_url(api)) as backend, Subscriber(stream_url(api)) as sub, \
            aiohttp.ClientSession() as http:
        await backend.register("create-todo-http", create_todo)
        await backend.trigger("http", "create-todo-http", {"path": "/todos", "method": "POST"})
        await _ready(backend)
        await sub.join("todos", "user_123")
        await sub.next()
        async with http.post(f"{base(api)}/todos", json={"userId": "user_123", "title": "New todo"}) as response:
            assert response.status == 200 and await response.json() == {"id": "t1"}
        event = await sub.next()
        assert event["event"] == {"type": "create", "data": {"id": "t1", "title": "New todo", "completed": False}}


async def test_request_shape_path_params_and_response_object(api: Server) -> None:
    seen: list[Any] = []

    async def get_todo(request: Any) -> Any:
        seen.append(request)
        return {"status_code": 201, "headers": {"X-Todo": request["path_params"]["id"]}, "body": {"ok": True}}

    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        await backend.register("get-todo", get_todo)
        await backend.trigger("http", "get-todo", {"api_path": "/todos/:id", "http_method": "put"})
        await _ready(backend)
        async with http.put(f"{base(api)}/todos/42?q=a&q=b", json={"x": 1}, headers={"X-Trace": "t"}) as response:
            assert response.status == 201 and response.headers["X-Todo"] == "42"
            assert await response.json() == {"ok": True}
    request = seen[0]
    assert request["method"] == "PUT" and request["path"] == "/todos/:id" and request["url_path"] == "/todos/42"
    assert request["path_params"] == {"id": "42"} and request["query_params"] == {"q": "b"}
    assert request["headers"]["x-trace"] == "t" and request["body"] == {"x": 1}


async def test_errors_are_json_and_leak_nothing(api: Server) -> None:
    async def broken(request: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    async def slow(request: Any) -> Any:
        await asyncio.sleep(3)

    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        await backend.register("broken", broken)
        await backend.register("slow", slow)
        await backend.trigger("http", "broken", {"path": "/broken", "method": "POST"})
        await backend.trigger("http", "slow", {"path": "/slow"})
        await _ready(backend)
        async with http.get(f"{base(api)}/nothing") as response:
            assert response.status == 404 and "no route" in (await response.json())["error"]
        async with http.get(f"{base(api)}/broken") as response:
            assert response.status == 405 and response.headers["Allow"] == "POST"
        async with http.post(f"{base(api)}/broken", data="{not json",
                             headers={"Content-Type": "application/json"}) as response:
            body = await response.json()
            assert response.status == 400 and body["error"] == "request body is not valid JSON" and body["message"]
        async with http.post(f"{base(api)}/broken", json={}) as response:
            text = await response.text()
            assert response.status == 500 and "hunter2" not in text and "error_id" in text
        async with http.get(f"{base(api)}/slow") as response:
            assert response.status == 504 and (await response.json())["error"] == "handler timed out"


async def test_cors_preflight_and_origin_check(api: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.options(f"{base(api)}/todos", headers={
                "Origin": "http://app.test", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"}) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.test"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
        async with http.get(f"{base(api)}/x", headers={"Origin": "http://evil.test"}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_invalid_http_trigger_is_rejected(api: Server) -> None:
    async with TestWorker(worker_url(api)) as backend:
        await backend.trigger("http", "f", {"path": "", "method": "POST"})
        rejected = await asyncio.wait_for(backend.other.get(), 5)
        assert rejected["type"] == "triggerregistrationresult" and "non-empty" in rejected["error"]["message"]
        await backend.trigger("http", "f", {"path": "/todos", "method": "FETCH"})
        rejected = await asyncio.wait_for(backend.other.get(), 5)
        assert "method" in rejected["error"]["message"]
