"""Worker-defined trigger types keep their bindings, whatever order workers connect and leave in (as iii).

A binding made before its type has a provider is held and forwarded when one registers the type; a provider that
registers it again (reconnect) gets every binding again; a binding's worker leaving, or an unregister by id, is
passed on to the provider as ``unregistertrigger``; a provider's refusal goes back to the binding's worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamhub.transport.server import Server
from tests.conftest import worker_url
from tests.helpers import TestWorker, timeout, wait_until

WEBHOOK = "webhook"


async def _settle(*workers: TestWorker) -> None:
    """Frames of one worker are applied in order: after a round trip, everything it sent before is applied."""
    for worker in workers:
        await worker.call("stream.list_all", {})


async def _next(worker: TestWorker, kind: str) -> dict[str, Any]:
    """The next frame of ``kind`` the engine sent ``worker`` outside calls (skipping nothing else)."""
    frame = await asyncio.wait_for(worker.other.get(), timeout(5))
    assert frame["type"] == kind, frame
    return frame


async def _bind(worker: TestWorker, trigger_id: str, function_id: str, config: Any) -> None:
    await worker.send({"type": "registertrigger", "id": trigger_id, "trigger_type": WEBHOOK,
                       "function_id": function_id, "config": config, "metadata": {"team": "a"}})


async def _provide(worker: TestWorker) -> None:
    await worker.send({"type": "registertriggertype", "id": WEBHOOK, "description": "Incoming webhooks",
                       "trigger_request_format": {"type": "object"}})


async def _live_ids(worker: TestWorker) -> list[str]:
    listed = await worker.call("engine::registered-triggers::list", {"trigger_type": WEBHOOK})
    return [row["id"] for row in listed["registered_triggers"]]


async def test_binding_made_before_its_provider_is_forwarded_when_it_arrives(server: Server) -> None:
    received: list[Any] = []

    async def on_hook(data: Any) -> Any:
        received.append(data)
        return "ok"

    async with TestWorker(worker_url(server)) as consumer:
        await consumer.register("hooks::on_push", on_hook)
        await _bind(consumer, "t1", "hooks::on_push", {"path": "/push"})
        await _settle(consumer)
        assert consumer.other.empty()  # held, not refused
        assert await _live_ids(consumer) == []  # held bindings cannot fire, so they are not listed
        async with TestWorker(worker_url(server)) as provider:
            await _provide(provider)
            forwarded = await _next(provider, "registertrigger")
            assert forwarded == {"type": "registertrigger", "id": "t1", "trigger_type": WEBHOOK,
                                 "function_id": "hooks::on_push", "config": {"path": "/push"},
                                 "metadata": {"team": "a"}}
            assert await _live_ids(consumer) == ["t1"]
            detail = await consumer.call("engine::triggers::info", {"id": WEBHOOK})
            assert detail == {"id": WEBHOOK, "worker_name": WEBHOOK, "description": "Incoming webhooks",
                              "configuration_schema": {"type": "object"}, "instance_count": 1}
            legacy = await consumer.call("engine::trigger-types::list", {})
            assert {"id": WEBHOOK, "description": "Incoming webhooks", "trigger_request_format": {"type": "object"}} \
                in legacy["trigger_types"]
            # The provider fires the binding by calling its function.
            assert await provider.call("hooks::on_push", {"body": 1}) == "ok"
            assert received[0]["body"] == 1
            # A binding made while the provider is there goes to it at once.
            await _bind(consumer, "t2", "hooks::on_push", {"path": "/pull"})
            assert (await _next(provider, "registertrigger"))["id"] == "t2"
            assert consumer.other.empty()


async def test_provider_that_comes_back_is_sent_every_binding_again(server: Server) -> None:
    async with TestWorker(worker_url(server)) as consumer, TestWorker(worker_url(server)) as other:
        first = TestWorker(worker_url(server))
        await first.__aenter__()
        await _provide(first)
        await _settle(first)
        await _bind(consumer, "t1", "hooks::a", {"path": "/a"})
        await _bind(other, "t2", "hooks::b", {"path": "/b"})
        assert {(await _next(first, "registertrigger"))["id"] for _ in range(2)} == {"t1", "t2"}
        await first.close()  # the provider's process dies
        await wait_until(lambda: not server.engine.trigger_types.provides(WEBHOOK))
        assert await _live_ids(consumer) == []  # held while nobody provides the type
        await _bind(consumer, "t3", "hooks::a", {"path": "/c"})  # bound while it is away
        async with TestWorker(worker_url(server)) as second:
            await _provide(second)
            replayed = [await _next(second, "registertrigger") for _ in range(3)]
            assert {(f["id"], f["config"]["path"]) for f in replayed} == {("t1", "/a"), ("t2", "/b"), ("t3", "/c")}
            assert await _live_ids(consumer) == ["t1", "t2", "t3"]
            # The same worker registering the type again (an SDK reconnecting) is sent them again too.
            await _provide(second)
            assert {(await _next(second, "registertrigger"))["id"] for _ in range(3)} == {"t1", "t2", "t3"}


async def test_bindings_of_a_departed_worker_are_unregistered_at_the_provider(server: Server) -> None:
    async with TestWorker(worker_url(server)) as provider, TestWorker(worker_url(server)) as keeper:
        await _provide(provider)
        await _settle(provider)
        consumer = TestWorker(worker_url(server))
        await consumer.__aenter__()
        await _bind(consumer, "gone-1", "hooks::a", {})
        await _bind(consumer, "gone-2", "hooks::a", {})
        await _bind(keeper, "kept", "hooks::b", {})
        assert {(await _next(provider, "registertrigger"))["id"] for _ in range(3)} == {"gone-1", "gone-2", "kept"}
        await consumer.close()
        dropped = {(await _next(provider, "unregistertrigger"))["id"] for _ in range(2)}
        assert dropped == {"gone-1", "gone-2"}
        assert await _live_ids(keeper) == ["kept"]
        # An explicit unregister, by any worker, is passed on too; a second one has nothing to pass on.
        await keeper.send({"type": "unregistertrigger", "id": "kept", "trigger_type": WEBHOOK})
        assert await _next(provider, "unregistertrigger") == {"type": "unregistertrigger", "id": "kept",
                                                               "trigger_type": WEBHOOK}
        await keeper.send({"type": "unregistertrigger", "id": "kept"})
        await _settle(keeper, provider)
        assert provider.other.empty()


async def test_held_bindings_of_a_departed_worker_are_never_forwarded(server: Server) -> None:
    async with TestWorker(worker_url(server)) as consumer:
        await _bind(consumer, "stale", "hooks::a", {})
        await _settle(consumer)
    await wait_until(lambda: not server.engine.workers.connected_workers)
    async with TestWorker(worker_url(server)) as provider:
        await _provide(provider)
        await _settle(provider)
        assert provider.other.empty()


async def test_provider_refusal_reaches_the_binding_worker_and_nobody_else_can_refuse(server: Server) -> None:
    async with TestWorker(worker_url(server)) as provider, TestWorker(worker_url(server)) as consumer, \
            TestWorker(worker_url(server)) as stranger:
        await _provide(provider)
        await _settle(provider)
        await _bind(consumer, "t1", "hooks::a", {"path": 7})
        await _bind(consumer, "t2", "hooks::a", {"path": "/ok"})
        assert [(await _next(provider, "registertrigger"))["id"] for _ in range(2)] == ["t1", "t2"]
        refusal = {"code": "trigger_registration_failed", "message": "path must be a string"}
        await stranger.send({"type": "triggerregistrationresult", "id": "t2", "error": refusal})
        await provider.send({"type": "triggerregistrationresult", "id": "t2"})  # an acceptance: nothing to do
        await provider.send({"type": "triggerregistrationresult", "id": "t1", "trigger_type": WEBHOOK,
                             "error": refusal})
        assert await _next(consumer, "triggerregistrationresult") == {
            "type": "triggerregistrationresult", "id": "t1", "trigger_type": WEBHOOK, "function_id": "hooks::a",
            "error": refusal}
        assert await _live_ids(consumer) == ["t2"]
        await _settle(stranger, provider, consumer)
        assert consumer.other.empty()
        # The refused binding is held: the next registration of the type gets it again.
        await _provide(provider)
        assert {(await _next(provider, "registertrigger"))["id"] for _ in range(2)} == {"t1", "t2"}


@pytest.mark.parametrize("reserved", ["engine::functions-available", "engine::workers-available"])
async def test_engine_trigger_types_cannot_be_taken_by_a_worker(server: Server, reserved: str) -> None:
    async with TestWorker(worker_url(server)) as thief:
        await thief.send({"type": "registertriggertype", "id": reserved, "description": "mine"})
        error = await _next(thief, "error")
        assert error["error"]["code"] == "reserved_trigger_type" and reserved in error["error"]["message"]
        listed = await thief.call("engine::triggers::list", {"include_internal": True, "prefix": "engine::"})
        assert {row["worker_name"] for row in listed["triggers"]} == {"iii-engine-functions"}


async def test_binding_taken_over_by_a_reconnected_worker_survives_the_old_connection(server: Server) -> None:
    """An SDK that reconnects re-sends its triggers with the same ids, maybe before the engine saw the old socket
    close: the old connection's cleanup must not unregister what the new one owns."""
    async with TestWorker(worker_url(server)) as provider, TestWorker(worker_url(server)) as new:
        await _provide(provider)
        await _settle(provider)
        old = TestWorker(worker_url(server))
        await old.__aenter__()
        await _bind(old, "t1", "hooks::a", {"v": 1})
        assert (await _next(provider, "registertrigger"))["config"] == {"v": 1}
        await _bind(new, "t1", "hooks::a", {"v": 1})
        assert (await _next(provider, "registertrigger"))["id"] == "t1"
        await old.close()
        await wait_until(lambda: len(server.engine.workers.connected_workers) == 2)
        await _settle(provider, new)
        assert provider.other.empty()
        assert await _live_ids(new) == ["t1"]
