"""REST routes as the reference serves them, over real HTTP: paths without a leading ``/``, conflicting routes
refused to the registering worker, and ``middleware_function_ids`` run in order before the handler (fail closed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from streamhub.config import RestApiConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, running, worker_url
from tests.helpers import TestWorker, timeout


@pytest.fixture
async def api() -> AsyncIterator[Server]:
    rest = RestApiConfig(port=0, default_timeout_ms=1000, cors_allowed_origins=("http://app.test",))
    async with running(replace(make_config(), rest_api=rest)) as srv:
        yield srv


def url(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.rest_port}{path}"


async def settled(worker: TestWorker) -> None:
    await worker.call("stream.list_all", {})  # the engine handles a connection's frames in order


async def registration_error(worker: TestWorker) -> dict[str, Any]:
    message = await asyncio.wait_for(worker.other.get(), timeout(5))
    assert message["type"] == "triggerregistrationresult", message
    error: dict[str, Any] = message["error"]
    return error


async def test_route_without_leading_slash_is_served_at_slash_path(api: Server) -> None:
    seen: list[Any] = []

    async def get_todo(request: Any) -> Any:
        seen.append(request)
        return {"status_code": 200, "body": {"id": request["path_params"]["id"]}}

    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        await backend.register("api::todo::get", get_todo)
        await backend.trigger("http", "api::todo::get", {"api_path": "todo/:id", "http_method": "GET"})
        await settled(backend)
        async with http.get(url(api, "/todo/42")) as response:
            assert response.status == 200 and await response.json() == {"id": "42"}
        async with http.get(url(api, "/todo/42/")) as response:  # a trailing slash is another route
            assert response.status == 404
    assert seen[0]["path"] == "todo/:id" and seen[0]["url_path"] == "/todo/42"
    assert seen[0]["trigger"] == {"type": "http", "path": "todo/:id", "method": "GET"}
    assert backend.other.empty()


async def test_conflicting_route_is_refused_to_the_registering_worker_only(api: Server) -> None:
    async def by_user(request: Any) -> Any:
        return {"by": "user", "params": request["path_params"]}

    async with TestWorker(worker_url(api)) as first, TestWorker(worker_url(api)) as second, \
            aiohttp.ClientSession() as http:
        await first.register("lists::by-user", by_user)
        trigger_id = await first.trigger("http", "lists::by-user", {"api_path": "lists/:userId/:listId"})
        await settled(first)
        await second.register("lists::by-list", by_user)
        await second.trigger("http", "lists::by-list", {"api_path": "/lists/:listId/:userId"})
        error = await registration_error(second)
        assert error["code"] == "trigger_registration_failed"
        assert "conflicts with route GET lists/:userId/:listId" in error["message"]
        async with http.get(url(api, "/lists/u/l")) as response:
            assert await response.json() == {"by": "user", "params": {"userId": "u", "listId": "l"}}

        # The same trigger id registered again replaces its own route, whatever its parameter names.
        await first.send({"type": "registertrigger", "id": trigger_id, "trigger_type": "http",
                          "function_id": "lists::by-user", "config": {"api_path": "lists/:a/:b"}})
        await settled(first)
        async with http.get(url(api, "/lists/u/l")) as response:
            assert (await response.json())["params"] == {"a": "u", "b": "l"}
        assert first.other.empty()


async def test_middleware_runs_in_order_and_can_answer_for_the_handler(api: Server) -> None:
    calls: list[tuple[str, Any]] = []

    async def log_request(req: Any) -> Any:
        calls.append(("mw::log", req))
        return {"action": "continue"}

    async def auth(req: Any) -> Any:
        calls.append(("mw::auth", req))
        if req["request"]["headers"].get("authorization") != "Bearer s3cret":
            return {"action": "respond", "response": {"status_code": 401, "body": {"error": "Unauthorized"},
                                                      "headers": {"WWW-Authenticate": "Bearer",
                                                                  "Content-Length": "1"}}}
        return {"action": "continue"}

    async def create_order(request: Any) -> Any:
        calls.append(("handler", request))
        return {"status_code": 201, "body": {"order": request["path_params"]["id"], "qty": request["body"]["qty"]}}

    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        for function_id, handler in [("mw::log", log_request), ("mw::auth", auth), ("api::orders", create_order)]:
            await backend.register(function_id, handler)
        await backend.trigger("http", "api::orders", {"api_path": "orders/:id", "http_method": "POST",
                                                      "middleware_function_ids": ["mw::log", "mw::auth"]})
        await settled(backend)
        async with http.post(url(api, "/orders/7?q=1"), json={"qty": 2},
                             headers={"Origin": "http://app.test"}) as response:
            assert response.status == 401 and await response.json() == {"error": "Unauthorized"}
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.headers["Content-Type"] == "application/json"
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.test"
        assert [name for name, _ in calls] == ["mw::log", "mw::auth"]  # the handler never ran
        first = calls[0][1]
        assert set(first) == {"phase", "request", "context"} and first["phase"] == "preHandler"
        assert first["context"] == {} and set(first["request"]) == {"path_params", "query_params", "headers", "method"}
        assert first["request"]["path_params"] == {"id": "7"} and first["request"]["query_params"] == {"q": "1"}
        assert first["request"]["method"] == "POST" and first["request"]["headers"]["origin"] == "http://app.test"

        calls.clear()
        async with http.post(url(api, "/orders/7"), json={"qty": 2},
                             headers={"Authorization": "Bearer s3cret"}) as response:
            assert response.status == 201 and await response.json() == {"order": "7", "qty": 2}
        assert [name for name, _ in calls] == ["mw::log", "mw::auth", "handler"]
        assert calls[2][1]["headers"]["authorization"] == "Bearer s3cret"  # the handler sees the request as sent


async def test_middleware_answer_defaults_as_the_reference(api: Server) -> None:
    answers = {"bare": {"action": "respond"},
               "text": {"action": "respond", "response": {"status_code": 403, "body": "no",
                                                          "headers": {"Content-Type": "text/plain"}}}}
    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        for name, answer in answers.items():
            async def respond(req: Any, answer: Any = answer) -> Any:
                return answer

            await backend.register(f"mw::{name}", respond)
            await backend.trigger("http", "api::never", {"api_path": name, "middleware_function_ids": [f"mw::{name}"]})
        await settled(backend)
        async with http.get(url(api, "/bare")) as response:
            assert response.status == 200 and await response.read() == b"null"
            assert response.headers["Content-Type"] == "application/json"
        async with http.get(url(api, "/text")) as response:  # the body goes out as JSON, the type as set
            assert response.status == 403 and await response.read() == b'"no"'
            assert response.headers["Content-Type"] == "text/plain"


async def test_middleware_that_cannot_answer_never_lets_the_request_through(
        api: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="streamhub.transport.http_api")
    handled: list[Any] = []

    async def handler(request: Any) -> Any:
        handled.append(request)
        return {"ok": True}

    async def broken(req: Any) -> Any:
        raise RuntimeError("secret detail")

    async def slow(req: Any) -> Any:
        await asyncio.sleep(5)
        return {"action": "continue"}

    def fixed(answer: Any) -> Any:
        async def middleware(req: Any) -> Any:
            return answer

        return middleware

    middleware = {"raises": broken, "slow": slow, "no-action": fixed({"allowed": True}), "none": fixed(None),
                  "bad-status": fixed({"action": "respond", "response": {"status_code": 700}})}
    expected = {"missing": (502, "middleware unavailable"), "raises": (500, "internal server error"),
                "slow": (504, "middleware timed out"), "no-action": (502, "bad middleware response"),
                "none": (502, "bad middleware response"), "bad-status": (502, "bad middleware response")}
    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        await backend.register("api::guarded", handler)
        await backend.register("mw::ok", fixed({"action": "continue"}))
        for name, function in middleware.items():
            await backend.register(f"mw::{name}", function)
        for name in expected:
            await backend.trigger("http", "api::guarded", {"api_path": f"guarded/{name}",
                                                           "middleware_function_ids": ["mw::ok", f"mw::{name}"]})
        await settled(backend)
        for name, (status, public) in expected.items():
            async with http.get(url(api, f"/guarded/{name}")) as response:
                body = await response.json()
            assert (response.status, body["error"]) == (status, public), name
            assert "secret detail" not in str(body)
            assert any(body["error_id"] in r.getMessage() and f"mw::{name}" in r.getMessage()
                       for r in caplog.records), name
    assert handled == []


async def test_middleware_and_handler_share_one_timeout(api: Server) -> None:
    async def slowish(req: Any) -> Any:
        await asyncio.sleep(0.7)
        return {"action": "continue"}

    async def handler(request: Any) -> Any:
        await asyncio.sleep(0.7)
        return {"ok": True}

    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        await backend.register("mw::slowish", slowish)
        await backend.register("api::slowish", handler)
        await backend.trigger("http", "api::slowish", {"api_path": "/slowish",
                                                       "middleware_function_ids": ["mw::slowish"]})
        await settled(backend)
        async with http.get(url(api, "/slowish")) as response:  # each alone fits in 1 s, both do not
            assert response.status == 504 and (await response.json())["error"] == "handler timed out"


async def test_condition_function_gates_the_handler_and_fails_closed(api: Server) -> None:
    """``condition_function_id`` on an ``http`` trigger: ``false`` is the reference's 422; anything that cannot
    answer never lets the request reach the handler."""
    handled: list[Any] = []
    conditions: list[Any] = []

    async def handler(request: Any) -> Any:
        handled.append(request["query_params"].get("who"))
        return {"status_code": 200, "body": {"ok": True}}

    async def condition(request: Any) -> Any:
        conditions.append(request)
        who = request["query_params"].get("who")
        if who == "boom":
            raise RuntimeError("condition bug")
        if who == "slow":
            await asyncio.sleep(5)
        return {"nobody": False, "ann": True}.get(who, "not a bool")  # only false skips, as in the reference

    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        await backend.register("api::gated", handler)
        await backend.register("api::gate", condition)
        await backend.trigger("http", "api::gated", {"api_path": "gated", "http_method": "GET",
                                                      "condition_function_id": "api::gate"})
        await backend.trigger("http", "api::gated", {"api_path": "ungated", "http_method": "GET",
                                                      "condition_function_id": "api::missing"})
        await settled(backend)
        for who, status in (("ann", 200), ("other", 200), ("nobody", 422), ("boom", 500), ("slow", 504)):
            async with http.get(url(api, f"/gated?who={who}")) as response:
                assert response.status == status, who
                body = await response.json()
                if status == 422:
                    assert body == {"error": "Request condition not met", "skipped": True}
                elif status >= 500:
                    assert set(body) == {"error", "error_id"} and "bug" not in str(body)
        async with http.get(url(api, "/ungated?who=ann")) as response:
            assert response.status == 502  # nothing serves the condition: closed, not open
    assert handled == ["ann", "other"]
    assert conditions[0]["path"] == "gated" and conditions[0]["method"] == "GET"


async def test_condition_function_id_must_be_a_string(api: Server) -> None:
    async with TestWorker(worker_url(api)) as backend:
        await backend.register("api::gated", lambda request: asyncio.sleep(0, {}))
        await backend.trigger("http", "api::gated", {"api_path": "gated", "condition_function_id": 7})
        error = await registration_error(backend)
        assert "config.condition_function_id must be a" in error["message"]
