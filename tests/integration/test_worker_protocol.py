"""The worker port: calls between workers, failures that must never hang, protocol hygiene."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from streamhub.config import EngineConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, worker_url
from tests.helpers import CallFailed, TestWorker, timeout


async def test_worker_calls_function_of_another_worker(server: Server) -> None:
    async def greet(data: Any) -> Any:
        return {"hello": data["name"], "caller": data.get("_caller_worker_id")}

    async with TestWorker(worker_url(server)) as provider, TestWorker(worker_url(server)) as caller:
        await provider.register("greet", greet)
        await provider.call("stream.list_all", {})
        result = await caller.call("greet", {"name": "ann"})
        assert result == {"hello": "ann", "caller": caller.worker_id}


async def test_worker_disconnecting_mid_call_fails_the_call(server: Server) -> None:
    started = asyncio.Event()

    async def hang(data: Any) -> Any:
        started.set()
        await asyncio.sleep(60)

    provider = TestWorker(worker_url(server))
    await provider.__aenter__()
    async with TestWorker(worker_url(server)) as caller:
        await provider.register("hang", hang)
        await provider.call("stream.list_all", {})
        call = asyncio.create_task(caller.call("hang", {}))
        await asyncio.wait_for(started.wait(), timeout(5))
        await provider.close()
        with pytest.raises(CallFailed) as failure:
            await call
        assert failure.value.code == "invocation_stopped"
        with pytest.raises(CallFailed) as gone:
            await caller.call("hang", {})
        assert gone.value.code == "function_not_found"


async def test_call_exceeding_timeout_returns_error() -> None:
    srv = Server(EngineConfig(port=0, stream=make_config().stream, invocation_timeout_ms=300))
    await srv.start()

    async def slow(data: Any) -> Any:
        await asyncio.sleep(5)

    try:
        async with TestWorker(worker_url(srv)) as provider, TestWorker(worker_url(srv)) as caller:
            await provider.register("slow", slow)
            await provider.call("stream.list_all", {})
            with pytest.raises(CallFailed) as failure:
                await caller.call("slow", {}, wait=3)
            assert failure.value.code == "invocation_timeout"
            assert "slow" in str(failure.value.message)
    finally:
        await srv.close()


async def test_handler_error_reaches_caller_with_its_code(server: Server) -> None:
    async def broken(data: Any) -> Any:
        raise ValueError("no such todo")

    async with TestWorker(worker_url(server)) as provider, TestWorker(worker_url(server)) as caller:
        await provider.register("broken", broken)
        await provider.call("stream.list_all", {})
        with pytest.raises(CallFailed) as failure:
            await caller.call("broken", {})
        assert failure.value.code == "handler_error" and failure.value.message == "no such todo"


async def test_ping_malformed_and_unknown_frames(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        assert worker.ws is not None
        await worker.send({"type": "ping"})
        assert (await asyncio.wait_for(worker.other.get(), timeout(5))) == {"type": "pong"}
        await worker.ws.send_str("{oops")
        error = await asyncio.wait_for(worker.other.get(), timeout(5))
        assert error["type"] == "error" and error["error"]["code"] == "invalid_json"
        await worker.send({"type": "observe", "anything": 1})  # newer SDK message: ignored silently
        await worker.send({"type": "invokefunction", "invocation_id": "abc", "function_id": 42})
        answer = await asyncio.wait_for(worker.other.get(), timeout(5))
        assert answer["type"] == "invocationresult" and answer["invocation_id"] == "abc"
        assert "function_id" in answer["error"]["message"]
        await worker.send({"type": "registertrigger", "id": "t1", "trigger_type": "stream",
                           "function_id": "f", "config": {}})
        rejected = await asyncio.wait_for(worker.other.get(), timeout(5))
        assert rejected["type"] == "triggerregistrationresult" and "stream_name" in rejected["error"]["message"]
        assert await worker.call("stream.list_all", {}) == {"stream": [], "count": 0}


async def test_fire_and_forget_call_gets_no_answer(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        await worker.send({"type": "invokefunction", "function_id": "stream.set",
                           "data": {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 7}})
        assert await worker.call("stream.get", {"stream_name": "s", "group_id": "g", "item_id": "i"}) == 7
        assert worker.other.empty()


async def test_otel_socket_is_accepted_and_ignored(server: Server) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{worker_url(server)}otel") as ws:
        await ws.send_bytes(b"OTLP" + orjson.dumps({"spans": []}))
        await ws.send_str('{"type":"log"}')
        async with TestWorker(worker_url(server)) as worker:
            assert await worker.call("stream.list_all", {}) == {"stream": [], "count": 0}


async def test_worker_metadata_is_recorded_and_dropped_on_disconnect(server: Server) -> None:
    """Published SDKs announce themselves with a void ``engine::workers::register`` call on every connect."""
    async with TestWorker(worker_url(server)) as worker:
        await worker.send({"type": "invokefunction", "function_id": "engine::workers::register",
                           "data": {"runtime": "node", "name": "w1", "version": "0.22.1"}, "action": {"type": "void"}})
        answer = await worker.call("engine::workers::register", {"runtime": "python", "name": "w1"})
        assert answer == {"success": True}
        assert server.engine.workers.descriptions[worker.worker_id or ""]["runtime"] == "python"
        assert worker.other.empty()
    for _ in range(100):
        if not server.engine.workers.descriptions:
            break
        await asyncio.sleep(0.01)
    assert server.engine.workers.descriptions == {}


async def test_enqueue_action_is_refused_not_run(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        await worker.send({"type": "invokefunction", "invocation_id": "q1", "function_id": "stream.set",
                           "action": {"type": "enqueue", "queue": "jobs"},
                           "data": {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 1}})
        answer = await asyncio.wait_for(worker.other.get(), timeout(5))
        assert answer["invocation_id"] == "q1" and answer["error"]["code"] == "enqueue_not_supported"
        assert "stream.set" in answer["error"]["message"]
        assert await worker.call("stream.get", {"stream_name": "s", "group_id": "g", "item_id": "i"}) == "<no result>"


async def test_engine_shutdown_closes_workers_promptly_with_1001() -> None:
    srv = Server(make_config())
    await srv.start()
    async with TestWorker(worker_url(srv)) as worker:
        assert worker.ws is not None and worker._reader is not None
        started = asyncio.get_running_loop().time()
        await srv.close()
        await asyncio.wait_for(worker._reader, timeout(5))
        assert worker.ws.close_code == 1001
        assert asyncio.get_running_loop().time() - started < timeout(2)
