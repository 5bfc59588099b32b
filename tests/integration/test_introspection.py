"""Engine introspection over a real worker socket: iii's function ids, inputs and result shapes, kept up to date
by registrations and disconnects; and the engine's trigger types ``engine::functions-available`` and
``engine::workers-available``, which fire on those changes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamhub.transport.server import Server
from tests.conftest import worker_url
from tests.helpers import CallFailed, TestWorker, timeout, wait_until

ABOUT = {"runtime": "python", "name": "billing", "version": "1.2.3", "os": "Linux", "pid": 4242,
         "description": "Charges\u202e cards\x07"}


async def _billing(worker: TestWorker) -> None:
    """A worker as published SDKs start one: describe itself, then register functions and triggers."""
    await worker.send({"type": "invokefunction", "function_id": "engine::workers::register", "data": ABOUT,
                       "action": {"type": "void"}})
    await worker.register("billing::charge", _echo)
    await worker.send({"type": "registerfunction", "id": "billing::charge", "description": "Charge a card",
                       "request_format": {"type": "object"}, "metadata": {"owner": "payments"}})
    await worker.register("billing::config_hook", _echo)
    await worker.send({"type": "registerfunction", "id": "billing::config_hook", "metadata": {"internal": True}})
    await worker.send({"type": "registertrigger", "id": "charge-http", "trigger_type": "http",
                       "function_id": "billing::charge", "config": {"api_path": "/charge", "http_method": "POST"}})
    await worker.send({"type": "registertrigger", "id": "charge-stream", "trigger_type": "stream",
                       "function_id": "billing::charge", "config": {"stream_name": "orders" * 20}})
    await worker.send({"type": "registertriggertype", "id": "billing::invoice", "description": "Invoice issued"})
    await worker.call("stream.list_all", {})


async def _echo(data: Any) -> Any:
    return data


async def test_functions_list_and_info(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        await _billing(worker)
        listed = (await worker.call("engine::functions::list", {}))["functions"]
        ids = [row["function_id"] for row in listed]
        assert ids == sorted(ids) and "stream::set" in ids and "billing::charge" in ids
        assert not [i for i in ids if i.startswith("engine::") or i.startswith("stream.")]  # internal, aliases
        assert "billing::config_hook" not in ids  # metadata.internal hides it by default
        charge = next(row for row in listed if row["function_id"] == "billing::charge")
        assert charge == {"function_id": "billing::charge", "worker_name": "billing",
                          "description": "Charge a card", "metadata": {"owner": "payments"}}
        stream_set = next(row for row in listed if row["function_id"] == "stream::set")
        assert stream_set["worker_name"] == "iii-stream" and stream_set["description"]

        everything = (await worker.call("engine::functions::list", {"include_internal": True}))["functions"]
        names = {row["function_id"]: row["worker_name"] for row in everything}
        assert names["engine::workers::list"] == "iii-engine-functions" and "billing::config_hook" in names
        assert {r["function_id"] for r in (await worker.call("engine::functions::list", {"prefix": "billing::"}))[
            "functions"]} == {"billing::charge"}
        by_worker = await worker.call("engine::functions::list", {"workers": ["billing", "nobody"]})
        assert [r["function_id"] for r in by_worker["functions"]] == ["billing::charge"]
        found = await worker.call("engine::functions::list", {"search": "CARD"})  # matched in the description
        assert [r["function_id"] for r in found["functions"]] == ["billing::charge"]
        ranked = await worker.call("engine::functions::list", {"search": "list"})
        assert [r["function_id"] for r in ranked["functions"]][:2] == ["stream::list", "stream::list_all"]

        info = await worker.call("engine::functions::info", {"function_id": "billing::charge"})
        assert info == {"function_id": "billing::charge", "worker_name": "billing", "description": "Charge a card",
                        "request_schema": {"type": "object"}, "metadata": {"owner": "payments"},
                        "registered_triggers": [
                            {"id": "charge-http", "trigger_type": "http",
                             "config": {"api_path": "/charge", "http_method": "POST"}},
                            {"id": "charge-stream", "trigger_type": "stream",
                             "config": {"stream_name": "orders" * 20}}]}
        batch = await worker.call("engine::functions::info", {"function_ids": ["nope", "stream::get", "nope"]})
        assert batch["functions"][0] == {"function_id": "nope", "error": "not_found"}
        assert batch["functions"][1]["function_id"] == "stream::get" and len(batch["functions"]) == 2
        await _refused(worker, "engine::functions::info", {"function_id": "nope"}, "NOT_FOUND", "'nope'")
        await _refused(worker, "engine::functions::info", {}, "INVALID_ARGUMENTS", "function_id")
        await _refused(worker, "engine::functions::list", {"prefix": 3}, "INVALID_ARGUMENTS", "prefix")
        await _refused(worker, "engine::functions::list", [], "INVALID_ARGUMENTS", "object")


async def test_trigger_types_and_registered_triggers(server: Server) -> None:
    async with TestWorker(worker_url(server)) as worker:
        await _billing(worker)
        types = (await worker.call("engine::triggers::list", {}))["triggers"]
        assert [t["id"] for t in types] == ["billing::invoice", "http", "stream", "stream:join", "stream:leave"]
        assert types[0] == {"id": "billing::invoice", "worker_name": "billing", "description": "Invoice issued"}
        assert {t["id"]: t["worker_name"] for t in types}["http"] == "iii-http"
        internal = await worker.call("engine::triggers::list", {"include_internal": True, "worker":
                                                                "iii-engine-functions"})
        assert [t["id"] for t in internal["triggers"]] == ["engine::functions-available",
                                                           "engine::workers-available"]
        http = await worker.call("engine::triggers::info", {"id": "http"})
        assert http == {"id": "http", "worker_name": "iii-http", "description": http["description"],
                        "instance_count": 1}
        await _refused(worker, "engine::triggers::info", {"id": "cron"}, "NOT_FOUND", "'cron'")

        rows = (await worker.call("engine::registered-triggers::list", {}))["registered_triggers"]
        assert [r["id"] for r in rows] == ["charge-http", "charge-stream"]
        assert rows[0] == {"id": "charge-http", "trigger_type": "http", "function_id": "billing::charge",
                           "worker_name": "billing", "config": {"api_path": "/charge", "http_method": "POST"},
                           "config_summary": '{"api_path":"/charge","http_method":"POST"}'}
        assert len(rows[1]["config_summary"]) == 81 and rows[1]["config_summary"].endswith("…")
        only_stream = await worker.call("engine::registered-triggers::list", {"trigger_type": "stream"})
        assert [r["id"] for r in only_stream["registered_triggers"]] == ["charge-stream"]
        searched = await worker.call("engine::registered-triggers::list", {"search": "HTTP", "worker": "billing"})
        assert [r["id"] for r in searched["registered_triggers"]] == ["charge-http"]
        detail = await worker.call("engine::registered-triggers::info", {"id": "charge-http"})
        assert detail["trigger"]["id"] == "http" and detail["function"]["function_id"] == "billing::charge"
        assert detail["worker_name"] == "billing" and "metadata" not in detail
        await _refused(worker, "engine::registered-triggers::info", {"id": "x"}, "NOT_FOUND", "'x'")
        await worker.send({"type": "unregistertrigger", "id": "charge-http", "trigger_type": "http"})
        rows = (await worker.call("engine::registered-triggers::list", {}))["registered_triggers"]
        assert [r["id"] for r in rows] == ["charge-stream"]


async def test_workers_list_and_info_follow_connects_and_disconnects(server: Server) -> None:
    async with TestWorker(worker_url(server)) as watcher:
        before = (await watcher.call("engine::workers::list", {}))["workers"]
        in_process = [w for w in before if w["runtime"] == "engine"]
        assert [w["name"] for w in in_process] == ["iii-engine-functions", "iii-http", "iii-stream"]
        assert all(w["status"] == "available" and w["isolation"] == "in-process" for w in in_process)
        assert [w["id"] for w in before if w["runtime"] != "engine"] == [watcher.worker_id]  # not described yet
        async with TestWorker(worker_url(server)) as billing:
            await _billing(billing)
            workers = (await watcher.call("engine::workers::list", {"runtime": "python"}))["workers"]
            assert len(workers) == 1
            row = workers[0]
            assert row["connected_at_ms"] > 0
            assert row == {"name": "billing", "description": "Charges cards", "version": "1.2.3",
                           "id": billing.worker_id, "runtime": "python", "os": "Linux", "status": "connected",
                           "function_count": 2, "connected_at_ms": row["connected_at_ms"], "active_invocations": 0,
                           "isolation": None, "ip_address": "127.0.0.1"}
            info = await watcher.call("engine::workers::info", {"name": "billing"})
            assert info["worker"] == {**row, "pid": 4242, "internal": False}
            assert [f["function_id"] for f in info["functions"]] == ["billing::charge", "billing::config_hook"]
            assert [t["id"] for t in info["trigger_types"]] == ["billing::invoice"]
            assert [t["id"] for t in info["registered_triggers"]] == ["charge-http", "charge-stream"]
            stream = await watcher.call("engine::workers::info", {"name": "iii-stream"})
            assert stream["worker"]["internal"] is True and "stream::set" in [f["function_id"] for f in
                                                                                stream["functions"]]
            assert [t["id"] for t in stream["trigger_types"]] == ["stream", "stream:join", "stream:leave"]
            found = await watcher.call("engine::workers::list", {"search": "BILL"})
            assert [w["name"] for w in found["workers"]] == ["billing"]
        await wait_until(lambda: len(server.engine.workers.connected_workers) == 1)
        after = await watcher.call("engine::workers::list", {"runtime": "python"})
        assert after == {"workers": []}
        await _refused(watcher, "engine::workers::info", {"name": "billing"}, "NOT_FOUND", "'billing'")
        rows = (await watcher.call("engine::registered-triggers::list", {}))["registered_triggers"]
        assert rows == []  # its triggers left with it
        ids = [r["function_id"] for r in (await watcher.call("engine::functions::list", {}))["functions"]]
        assert not [i for i in ids if i.startswith("billing::")]


async def test_functions_available_fires_on_register_unregister_and_disconnect(server: Server) -> None:
    calls: asyncio.Queue[Any] = asyncio.Queue()

    async def on_functions(data: Any) -> Any:
        await calls.put(data)
        return None

    async with TestWorker(worker_url(server)) as watcher:
        await watcher.send({"type": "registertrigger", "id": "fa", "trigger_type": "engine::functions-available",
                            "function_id": "console::on_functions", "config": {}})
        await watcher.register("console::on_functions", on_functions)
        first = await _next(calls)  # its own function changed the set
        assert first["event"] == "functions_changed"
        assert {"console::on_functions", "stream::set", "engine::functions::list"} <= _ids(first)
        listed = await watcher.call("engine::registered-triggers::list", {"trigger_type":
                                                                          "engine::functions-available"})
        assert [r["id"] for r in listed["registered_triggers"]] == ["fa"]
        async with TestWorker(worker_url(server)) as other:
            for n in range(3):  # a burst of registrations: one call
                await other.register(f"other::f{n}", _echo)
            assert {"other::f0", "other::f1", "other::f2"} <= _ids(await _next(calls))
            await other.send({"type": "unregisterfunction", "id": "other::f0"})
            changed = _ids(await _next(calls))
            assert "other::f0" not in changed and "other::f1" in changed
            await other.send({"type": "registerfunction", "id": "other::f1", "description": "same id again"})
            await other.call("stream.list_all", {})
        assert not ({"other::f1", "other::f2"} & _ids(await _next(calls)))  # it disconnected
        await asyncio.sleep(0.5)
        assert calls.empty()  # re-registering the same id did not change the set: no extra call
        await watcher.send({"type": "unregistertrigger", "id": "fa"})
        async with TestWorker(worker_url(server)) as third:
            await third.register("third::f", _echo)
            await third.call("stream.list_all", {})
        await asyncio.sleep(0.5)
        assert calls.empty()  # unbound: not called any more


async def test_workers_available_fires_on_connect_describe_and_disconnect(server: Server) -> None:
    calls: asyncio.Queue[Any] = asyncio.Queue()

    async def on_workers(data: Any) -> Any:
        await calls.put(data)

    async with TestWorker(worker_url(server)) as watcher:
        await watcher.register("console::on_workers", on_workers)
        await watcher.send({"type": "registertrigger", "id": "wa", "trigger_type": "engine::workers-available",
                            "function_id": "console::on_workers", "config": {}})
        await watcher.call("stream.list_all", {})
        async with TestWorker(worker_url(server)) as other:
            assert await _next(calls) == {"event": "worker_connected", "worker_id": other.worker_id}
            await other.send({"type": "invokefunction", "function_id": "engine::workers::register",
                              "data": {"name": "x"}, "action": {"type": "void"}})
            assert await _next(calls) == {"event": "worker_metadata_updated", "worker_id": other.worker_id}
        assert await _next(calls) == {"event": "worker_disconnected", "worker_id": other.worker_id}


def _ids(payload: dict[str, Any]) -> set[str]:
    return {row["function_id"] for row in payload["functions"]}


async def _next(calls: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(calls.get(), timeout(5))


async def _refused(worker: TestWorker, function_id: str, data: Any, code: str, needle: str) -> None:
    with pytest.raises(CallFailed) as refused:
        await worker.call(function_id, data)
    assert refused.value.code == code and needle in str(refused.value.message)
