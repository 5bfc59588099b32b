"""Engine introspection called from published iii SDK workers (PyPI ``iii-sdk==0.25.0``, npm ``iii-sdk@0.22.1``) the
way iii's examples and SDK tests call it: ``trigger({function_id: EngineFunctions.LIST_*, payload})``; and the
``engine::functions-available`` hook of iii's Python example worker (a function bound with
``registerTrigger({type: "engine::functions-available", config: {}})``). Neither SDK ships helper methods for
these (no ``listFunctions()`` in these versions), so the calls are the whole contract.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamhub.transport.server import Server
from tests.compat.drivers import KINDS, SdkWorker
from tests.conftest import worker_url

pytestmark = pytest.mark.parametrize("kind", KINDS)


async def test_introspection_calls_as_iii_examples_make_them(kind: str, server: Server) -> None:
    name = f"compat-{'py' if kind == 'python' else 'node'}"  # the drivers' worker names
    async with SdkWorker(kind, worker_url(server)) as worker:
        await worker.register("compat::echo", echo=True)
        await worker.result("register_trigger", type="http", function_id="compat::echo",
                            config={"api_path": "/compat/list-triggers", "http_method": "GET"})
        await worker.settle()

        functions = await worker.result("trigger", function_id="engine::functions::list", payload={})
        rows = {row["function_id"]: row for row in functions["functions"]}
        assert rows["compat::echo"]["worker_name"] == name and rows["stream::set"]["worker_name"] == "iii-stream"

        workers = (await worker.result("trigger", function_id="engine::workers::list", payload={}))["workers"]
        mine = [w for w in workers if w["name"] == name]
        assert len(mine) == 1
        assert mine[0]["runtime"] == kind and mine[0]["status"] == "connected" and mine[0]["function_count"] == 1
        assert isinstance(mine[0]["version"], str) and isinstance(mine[0]["connected_at_ms"], int)
        info = await worker.result("trigger", function_id="engine::workers::info", payload={"name": name})
        assert isinstance(info["worker"]["pid"], int) and info["worker"]["internal"] is False
        assert [f["function_id"] for f in info["functions"]] == ["compat::echo"]

        # As iii's SDK tests list them: trigger types, then the registered (bound) triggers.
        types = await worker.result("trigger", function_id="engine::triggers::list",
                                    payload={"include_internal": False})
        assert {"http", "stream", "stream:join", "stream:leave"} <= {t["id"] for t in types["triggers"]}
        bound = await worker.result("trigger", function_id="engine::registered-triggers::list",
                                    payload={"include_internal": False})
        found = [t for t in bound["registered_triggers"] if t["function_id"] == "compat::echo"]
        assert len(found) == 1 and found[0]["trigger_type"] == "http" and found[0]["worker_name"] == name
        assert "/compat/list-triggers" in found[0]["config_summary"]

        # iii's Python example lists trigger types with the retired id and reads ``trigger_types``.
        legacy = await worker.result("trigger", function_id="engine::trigger-types::list",
                                     payload={"include_internal": False})
        assert "http" in {t["id"] for t in legacy["trigger_types"]}

        missing = await worker.trigger("engine::functions::info", {"function_id": "compat::missing"})
        assert missing["error"]["code"] == "NOT_FOUND"


async def test_functions_available_hook_of_iii_example_worker(kind: str, server: Server) -> None:
    listener = "iii_example.functions_available_listener.1"
    async with SdkWorker(kind, worker_url(server)) as example:
        await example.register(listener, record=True)
        await example.result("register_trigger", type="engine::functions-available", function_id=listener,
                             config={})
        await example.settle()
        async with SdkWorker(kind, worker_url(server)) as other:
            await other.register("compat::late", echo=True)
            seen = await _next_change(example)
            while "compat::late" not in seen:  # the listener's own registration may have fired first
                assert listener in seen
                seen = await _next_change(example)
            assert listener in seen and "stream::set" in seen
        assert "compat::late" not in await _next_change(example)  # it disconnected
        await example.settle()
        assert example.invocations.empty()


async def _next_change(worker: SdkWorker) -> set[str]:
    """The function ids of the next ``engine::functions-available`` call the worker's listener got."""
    return _ids(await worker.invoked())


def _ids(invocation: dict[str, Any]) -> set[str]:
    data = invocation["data"]
    assert data["event"] == "functions_changed"
    return {row["function_id"] for row in data["functions"]}
