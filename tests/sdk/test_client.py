"""The SDK's worker side against a real engine: calls, errors, timeouts, functions, triggers, registrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamhub.errors import InvalidRequest, StreamhubError
from streamhub.sdk import (
    CallError,
    CallTimeout,
    Client,
    ConnectError,
    NotConnected,
    Record,
    RegistrationError,
    StreamEvent,
    UpdateOp,
)
from streamhub.transport.server import Server
from tests.conftest import stream_url, worker_url
from tests.helpers import Subscriber, free_port, timeout

ITEM = {"stream_name": "todos", "group_id": "u1", "item_id": "t1"}


@pytest.fixture
async def client(server: Server) -> AsyncIterator[Client]:
    async with Client(worker_url(server), stream_url=stream_url(server), call_timeout=timeout(5)) as c:
        yield c


async def test_call_returns_results_and_none_for_no_result(client: Client) -> None:
    assert await client.call("stream.set", {**ITEM, "data": {"title": "milk"}}) == {
        "old_value": None, "new_value": {"title": "milk"}}
    assert await client.call("stream::get", ITEM) == {"title": "milk"}
    assert await client.call("stream.get", {**ITEM, "item_id": "missing"}) is None


async def test_update_ops_travel_as_objects(client: Client) -> None:
    await client.call("stream.set", {**ITEM, "data": {"completed": False, "version": 1, "tags": []}})
    result = await client.call("stream.update", {**ITEM, "ops": [
        UpdateOp.set("completed", True), UpdateOp.increment("version", 1), UpdateOp.append("tags", "x")]})
    assert result["new_value"] == {"completed": True, "version": 2, "tags": ["x"]}


async def test_engine_error_is_raised_with_its_code_and_message(client: Client) -> None:
    with pytest.raises(CallError) as missing:
        await client.call("todos::nothing", {})
    assert missing.value.code == "function_not_found"
    assert missing.value.function_id == "todos::nothing" and "todos::nothing" in missing.value.reason
    await client.call("stream.set", {**ITEM, "data": {"title": "milk"}})
    with pytest.raises(CallError) as bad_op:
        await client.call("stream.update", {**ITEM, "ops": [UpdateOp.increment("title", 1)]})
    assert bad_op.value.code == "increment.not_number" and "ops[0]" in bad_op.value.message


async def test_bad_input_fails_before_sending(client: Client) -> None:
    with pytest.raises(InvalidRequest, match=r"data of call stream.set is not JSON-serializable: .*object"):
        await client.call("stream.set", {**ITEM, "data": object()})
    with pytest.raises(InvalidRequest, match="function id must be a non-empty string"):
        client.register_function("", lambda event: None)
    with pytest.raises(TypeError, match=r"expected handler\(event\) or handler\(event, context\)"):
        client.register_function("three", lambda a, b, c: None)


async def test_functions_of_one_client_called_by_another(server: Server, client: Client) -> None:
    seen: list[tuple[Any, Any]] = []

    @client.function("math::add", description="adds")
    async def add(event: Record, context: Any) -> Any:
        seen.append((event, context))
        return {"sum": event["a"] + event.b}

    @client.function("math::sync_one_arg")
    def one_arg(event: Any) -> Any:
        return [event["x"], "sync"]

    await client.register_function("math::fails", _raises)
    await client.register_function("math::typed_failure", _raises_typed)
    await client.register_function("math::bad_result", lambda event: {1, 2j})
    async with Client(worker_url(server), call_timeout=timeout(5)) as other:
        assert await other.call("math::add", {"a": 2, "b": 3}) == {"sum": 5}
        assert await other.call("math::sync_one_arg", {"x": 1}) == [1, "sync"]
        with pytest.raises(CallError) as failed:
            await other.call("math::fails", {})
        assert failed.value.code == "invocation_failed" and failed.value.reason == "ValueError: no such todo"
        with pytest.raises(CallError) as typed:
            await other.call("math::typed_failure", {})
        assert typed.value.code == "todo.missing" and typed.value.reason == "todo 7 does not exist"
        with pytest.raises(CallError) as unserializable:
            await other.call("math::bad_result", {})
        assert "result of math::bad_result is not JSON-serializable" in unserializable.value.reason
    assert seen[0][1] is None and seen[0][0]["_caller_worker_id"]  # the engine names the caller


async def _raises(event: Any) -> Any:
    raise ValueError("no such todo")


async def _raises_typed(event: Any) -> Any:
    raise StreamhubError("todo 7 does not exist", code="todo.missing")


async def test_call_timeout_and_late_answer_is_dropped(server: Server, client: Client) -> None:
    release = asyncio.Event()

    async def slow(event: Any) -> Any:
        await release.wait()
        return "late"

    await client.register_function("slow", slow)
    with pytest.raises(CallTimeout, match=r"slow: no answer within 0.2 s"):
        await client.call("slow", {}, timeout=0.2)
    release.set()
    assert await client.call("stream.list_all", {}) == {"stream": [], "count": 0}


async def test_call_void_runs_without_answer(client: Client) -> None:
    ran = asyncio.Event()
    await client.register_function("notify", lambda event: ran.set())
    assert await client.call_void("notify", {"to": "ann"}) is None
    await asyncio.wait_for(ran.wait(), timeout(5))
    await client.call_void("stream.set", {**ITEM, "data": 1})
    assert await client.call("stream.get", ITEM) == 1


async def test_stream_trigger_handler_gets_documented_event_shape(client: Client) -> None:
    events: asyncio.Queue[StreamEvent] = asyncio.Queue()

    @client.function("todos::on_change", triggers=[{"type": "stream", "config": {"stream_name": "todos"}}])
    async def on_change(event: StreamEvent, context: Any) -> None:
        await events.put(event)

    await client.call("stream.set", {**ITEM, "data": {"title": "milk"}})
    await client.call("stream.delete", ITEM)
    created = await asyncio.wait_for(events.get(), timeout(5))
    assert isinstance(created, StreamEvent) and created["streamName"] == "todos"
    assert created.event_type == "create" and created.data == {"title": "milk"}
    assert created.event.create is not None and created.event.create.data == {"title": "milk"}
    assert created.event.update is None and created.id == "t1" and created.group_id == "u1"
    deleted = await asyncio.wait_for(events.get(), timeout(5))
    assert deleted.event_type == "delete" and deleted.event.delete is not None


async def test_join_trigger_passes_auth_context_and_can_refuse(server: Server, client: Client) -> None:
    joins: list[tuple[Any, Any]] = []

    async def on_join(event: Record, context: Any) -> Any:
        joins.append((event, context))
        return {"unauthorized": event.group_id == "secret"}

    client.declare({"chat::on_join": {"handler": on_join,
                                      "triggers": [{"type": "stream_join", "config": {"stream_name": "chat"}}]}})
    await client.register_trigger("stream_leave", "chat::on_join", {"stream_name": "chat"})
    async with Subscriber(stream_url(server)) as sub:
        await sub.join("chat", "open", sub_id="s1")
        assert (await sub.next())["event"]["type"] == "sync"
        await sub.join("chat", "secret", sub_id="s2")
        assert (await sub.next())["event"] == {"type": "unauthorized", "reason": "refused"}
    assert joins[0][0].subscription_id == "s1" and joins[0][0].connection_id
    assert joins[0][1] is None  # no auth function configured: the engine passes no context


async def test_refused_trigger_raises_when_awaited(client: Client) -> None:
    await client.register_function("f", lambda event: None)
    with pytest.raises(RegistrationError, match=r"config.stream_name is required"):
        await client.register_trigger("stream", "f", {})
    held = await client.register_trigger("cron", "f", {"expression": "* * * * *"})  # no provider yet: held, as iii
    held.unregister()
    accepted = await client.register_trigger("stream", "f", {"stream_name": "todos"})
    accepted.unregister()


async def test_declared_trigger_refused_at_connect(server: Server) -> None:
    client = Client(worker_url(server))
    client.register_function("f", lambda event: None, triggers=[{"type": "stream", "config": {"group_id": "g"}}])
    with pytest.raises(RegistrationError, match="stream_name is required"):
        await client.connect()


async def test_unregister_removes_function_from_engine(server: Server, client: Client) -> None:
    entry = await client.register_function("temp", lambda event: "here")
    assert await client.call("temp", {}) == "here"
    entry.unregister()
    await client.call("stream.list_all", {})  # the engine handled the unregister before this call
    with pytest.raises(CallError) as gone:
        await client.call("temp", {})
    assert gone.value.code == "function_not_found"


async def test_worker_announces_itself(server: Server, client: Client) -> None:
    await client.call("stream.list_all", {})
    description = server.engine.workers.descriptions[client.worker_id or ""]
    assert description["framework"] == "streamhub" and description["runtime"] == "python"


async def test_connect_to_nothing_fails_clearly_and_calls_need_a_connection() -> None:
    client = Client(f"ws://127.0.0.1:{free_port()}/", connect_timeout=0.3)
    with pytest.raises(ConnectError, match=r"cannot connect to ws://127.0.0.1:.* within 0.3 s"):
        await client.connect()
    with pytest.raises(NotConnected):
        await client.call("stream.list_all", {})
