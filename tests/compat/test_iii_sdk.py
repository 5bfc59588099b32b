"""Workers written with the published iii SDKs (PyPI ``iii-sdk==0.25.0``, npm ``iii-sdk@0.22.1``) run against
streamhub unchanged: functions across workers, stream functions, ``stream`` and ``stream:join`` triggers, reconnect.

What the SDKs send that streamhub does not act on, and how each test pins the answer:
- ``engine::workers::register`` (void call on every connect): recorded per worker, no answer (test_calls...).
- ``TriggerAction.Enqueue``: answered with error ``enqueue_not_supported`` (streamhub has no queues).
- ``reattach`` (first frame after a reconnect): ignored; registrations are replayed (test_reconnect...,
  test_join_guard_holds_while_the_worker_is_cut_off...).
- the ``/otel`` telemetry socket and extra fields (``metadata``, ``namespace``, ``traceparent``, ...): accepted and
  ignored; every test here runs with the SDKs' telemetry on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streamhub.config import WorkerAuthConfig
from streamhub.core.triggers import JOIN
from streamhub.sdk import Client, StreamEvent
from streamhub.transport.server import Server
from tests.browser.proxy import TcpProxy
from tests.compat.drivers import KINDS, SdkWorker
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, timeout, wait_until
from tests.process import EngineProcess

pytestmark = pytest.mark.parametrize("kind", KINDS)

ITEM = {"stream_name": "todos", "group_id": "u1", "item_id": "t1"}


async def test_calls_between_published_sdk_workers(kind: str, server: Server) -> None:
    url = worker_url(server)
    async with SdkWorker(kind, url) as provider, SdkWorker(kind, url) as caller:
        await provider.register("compat::echo", echo=True)
        await provider.register("compat::fail", fail="boom")
        await provider.register("compat::record", record=True, **{"return": "ok"})
        await provider.settle()

        answer = await caller.trigger("compat::echo", {"n": 1})
        assert answer["result"]["echo"]["n"] == 1
        assert answer["result"]["echo"]["_caller_worker_id"] in server.engine.workers.descriptions
        failed = (await caller.trigger("compat::fail", {}))["error"]
        assert failed["code"] == "invocation_failed" and "boom" in failed["message"]
        missing = (await caller.trigger("compat::missing", {}))["error"]
        assert missing["code"] == "function_not_found" and "compat::missing" in missing["message"]

        assert (await caller.trigger("compat::record", {"void": True}, action="void"))["result"] is None
        assert (await provider.invoked())["data"]["void"] is True
        enqueued = (await caller.trigger("compat::record", {}, action="enqueue"))["error"]
        assert enqueued["code"] == "enqueue_not_supported"

        # Each SDK announced itself with engine::workers::register; streamhub recorded it.
        runtimes = {d.get("runtime") for d in server.engine.workers.descriptions.values()}
        assert runtimes == {kind}

        # And the streamhub SDK talks to them both ways.
        async with Client(url, call_timeout=timeout(5)) as native:
            native.register_function("native::double", lambda event: event["n"] * 2)
            await native.call("stream.list_all", {})
            assert (await native.call("compat::echo", {"from": "native"}))["echo"]["from"] == "native"
            assert (await caller.trigger("native::double", {"n": 21}))["result"] == 42


async def test_stream_functions_from_published_sdk(kind: str, server: Server) -> None:
    async with SdkWorker(kind, worker_url(server)) as worker, Subscriber(stream_url(server)) as sub:
        await sub.join("todos", "u1")
        assert (await sub.next())["event"] == {"type": "sync", "data": []}
        set_result = await worker.result("trigger", function_id="stream::set",
                                         payload={**ITEM, "data": {"title": "milk", "version": 1}})
        assert set_result == {"old_value": None, "new_value": {"title": "milk", "version": 1}}
        assert await worker.result("trigger", function_id="stream::get", payload=ITEM) == {
            "title": "milk", "version": 1}
        ops = [{"type": "set", "path": "completed", "value": True}, {"type": "increment", "path": "version", "by": 1}]
        updated = await worker.result("trigger", function_id="stream::update", payload={**ITEM, "ops": ops})
        assert updated["new_value"] == {"title": "milk", "version": 2, "completed": True}
        assert await worker.result("trigger", function_id="stream::list",
                                   payload={"stream_name": "todos", "group_id": "u1"}) == [updated["new_value"]]
        assert await worker.result("trigger", function_id="stream::list_groups",
                                   payload={"stream_name": "todos"}) == ["u1"]
        bad_op = {"type": "increment", "path": "title", "by": 1}
        bad = await worker.trigger("stream::update", {**ITEM, "ops": [bad_op]})
        assert bad["error"]["code"] == "increment.not_number"
        assert [(await sub.next())["event"]["type"] for _ in range(2)] == ["create", "update"]


async def test_stream_trigger_fires_on_change_by_another_worker(kind: str, server: Server) -> None:
    async with SdkWorker(kind, worker_url(server)) as worker:
        await worker.register("compat::on_change", record=True)
        await worker.result("register_trigger", type="stream", function_id="compat::on_change",
                            config={"stream_name": "todos", "group_id": "u1"})
        await worker.settle()
        async with Client(worker_url(server), call_timeout=timeout(5)) as other:
            await other.call("stream.set", {**ITEM, "group_id": "u2", "data": "not watched"})
            await other.call("stream.set", {**ITEM, "data": {"title": "milk"}})
        fired = (await worker.invoked())["data"]
        assert fired["type"] == "stream" and fired["streamName"] == "todos" and fired["groupId"] == "u1"
        assert fired["id"] == "t1" and fired["event"] == {"type": "create", "data": {"title": "milk"}}
        assert worker.invocations.empty()


async def test_join_and_leave_triggers_fire_for_websocket_clients(kind: str, server: Server) -> None:
    async with SdkWorker(kind, worker_url(server)) as worker:
        await worker.register("compat::on_join", record=True)
        await worker.register("compat::deny", **{"return": {"unauthorized": True}})
        await worker.result("register_trigger", type="stream:join", function_id="compat::on_join", config={})
        await worker.result("register_trigger", type="stream:join", function_id="compat::deny",
                            config={"stream_name": "secret"})
        await worker.register("compat::on_leave", record=True)
        await worker.result("register_trigger", type="stream:leave", function_id="compat::on_leave", config={})
        await worker.settle()
        async with Subscriber(stream_url(server)) as client:
            await client.join("todos", "u1", sub_id="s1")
            assert (await client.next())["event"]["type"] == "sync"
            joined = await worker.invoked()
            assert joined["invoked"] == "compat::on_join"
            assert {k: joined["data"][k] for k in ("subscription_id", "stream_name", "group_id", "id", "context")} \
                == {"subscription_id": "s1", "stream_name": "todos", "group_id": "u1", "id": None, "context": None}
            await client.join("secret", "g", sub_id="s2")
            assert (await client.next())["event"] == {"type": "unauthorized", "reason": "refused"}
            assert (await worker.invoked())["data"]["stream_name"] == "secret"
            await client.leave("todos", "u1", "s1")
            left = await worker.invoked()
            assert left["invoked"] == "compat::on_leave" and left["data"]["subscription_id"] == "s1"


async def test_join_guard_holds_while_the_worker_is_cut_off_and_judges_again_after_reconnect(
        kind: str, server: Server) -> None:
    proxy = TcpProxy(server.worker_port)  # the network between the worker and the engine
    await proxy.start()
    try:
        async with SdkWorker(kind, proxy.url) as worker, Subscriber(stream_url(server)) as client:
            await worker.register("compat::guard", record=True, **{"return": {"unauthorized": True}})
            await worker.result("register_trigger", type="stream:join", function_id="compat::guard",
                                config={"stream_name": "secret"})
            await worker.settle()
            await client.join("secret", "g", sub_id="s1")
            assert (await client.next())["event"] == {"type": "unauthorized", "reason": "refused"}
            assert (await worker.invoked())["data"]["subscription_id"] == "s1"

            proxy.blocked = True
            proxy.sever()
            await wait_until(lambda: not server.engine.functions.exists("compat::guard"))
            await client.join("secret", "g", sub_id="s2")
            assert (await client.next())["event"] == {"type": "unauthorized", "reason": "guard_unavailable"}

            proxy.blocked = False  # the SDK reconnects and replays its registrations (same trigger id)
            await wait_until(lambda: server.engine.functions.exists("compat::guard")
                             and [g.owner for g in server.engine.triggers.of_type(JOIN)] != [None], 15)
            assert len(server.engine.triggers.of_type(JOIN)) == 1
            await client.join("secret", "g", sub_id="s3")
            assert (await client.next())["event"] == {"type": "unauthorized", "reason": "refused"}
            assert (await worker.invoked())["data"]["subscription_id"] == "s3"
    finally:
        await proxy.close()


async def test_published_sdk_worker_comes_back_after_engine_restart(kind: str, tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    await engine.start()
    try:
        async with SdkWorker(kind, engine.worker_url) as provider, SdkWorker(kind, engine.worker_url) as caller:
            await provider.register("compat::echo", echo=True)
            await provider.settle()
            assert (await caller.trigger("compat::echo", 1))["result"]["echo"] == 1
            engine.kill()
            await engine.proc.wait()  # type: ignore[union-attr]
            await engine.start()
            answer: dict[str, Any] = {}
            async with asyncio.timeout(timeout(15)):
                while answer.get("result") is None:  # until both have reconnected and re-registered
                    answer = await caller.trigger("compat::echo", 2, timeout_ms=1000)
                    if "error" in answer:
                        await asyncio.sleep(0.1)
            assert answer["result"]["echo"] == 2
    finally:
        await engine.stop()


async def test_native_subscriber_sees_changes_made_by_published_sdk(kind: str, server: Server) -> None:
    events: asyncio.Queue[StreamEvent] = asyncio.Queue()
    async with Client(worker_url(server), stream_url=stream_url(server)) as native:
        sub = native.stream.subscribe("todos", "u1", events.put_nowait)
        await sub.wait_synced(timeout(5))
        async with SdkWorker(kind, worker_url(server)) as worker:
            await worker.result("trigger", function_id="stream::set", payload={**ITEM, "data": {"by": kind}})
            await worker.result("trigger", function_id="stream::send",
                                payload={"stream_name": "todos", "group_id": "u1", "type": "nudge", "data": 1})
        received = [await asyncio.wait_for(events.get(), timeout(5)) for _ in range(3)]
    assert [e.event_type for e in received] == ["sync", "create", "event"]
    assert received[1].event.create is not None and received[1].event.create.data == {"by": kind}
    assert received[2].event.event is not None and received[2].event.event.event_type == "nudge"


async def test_worker_auth_admits_published_sdk_with_its_token(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """``III_TOKEN`` travels as ``Authorization: Bearer``; a wrong or missing one never gets a socket."""
    caplog.set_level(logging.INFO, logger="streamhub.transport.access")
    config = replace(make_config(), worker_auth=WorkerAuthConfig(tokens=("compat-token",)))
    async with running(config) as server:
        url = worker_url(server)
        async with SdkWorker(kind, url, env={"III_TOKEN": "compat-token"}) as worker:
            await worker.register("compat::echo", echo=True)
            await worker.settle()
            assert (await worker.trigger("compat::echo", 7))["result"]["echo"] == 7
        await wait_until(lambda: not server.workers.connections)
        for env in ({"III_TOKEN": "wrong-token"}, {}):
            caplog.clear()
            async with SdkWorker(kind, url, env=env, expect_ready=False):
                # refused at least twice on the worker route: it kept trying and never got in
                await wait_until(lambda: sum(" to / refused" in r.getMessage() for r in caplog.records) >= 2)
                assert server.workers.connections == {}
            assert all("wrong-token" not in r.getMessage() for r in caplog.records)
