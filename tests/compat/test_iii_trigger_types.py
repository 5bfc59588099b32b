"""Custom trigger types between published iii SDK workers (PyPI ``iii-sdk==0.25.0``, npm ``iii-sdk@0.22.1``), written
as iii's examples write them (``registerTriggerType({id, description}, {registerTrigger, unregisterTrigger})``):
the bindings survive the provider connecting late and reconnecting, and a consumer's disconnect reaches the
provider's ``unregisterTrigger``.
"""

from __future__ import annotations

import pytest

from streamhub.transport.server import Server
from tests.browser.proxy import TcpProxy
from tests.compat.drivers import KINDS, SdkWorker
from tests.conftest import worker_url
from tests.helpers import wait_until

pytestmark = pytest.mark.parametrize("kind", KINDS)

WEBHOOK = "compat::webhook"


async def _provide(worker: SdkWorker) -> None:
    await worker.result("register_trigger_type", id=WEBHOOK, description="Incoming webhooks")


async def _bind(worker: SdkWorker, path: str, handle: str = "") -> None:
    await worker.result("register_trigger", type=WEBHOOK, function_id="compat::on_hook", config={"path": path},
                        handle=handle)


async def test_provider_that_connects_late_gets_the_binding_and_fires_it(kind: str, server: Server) -> None:
    async with SdkWorker(kind, worker_url(server)) as consumer:
        await consumer.register("compat::on_hook", record=True, **{"return": "handled"})
        await _bind(consumer, "/late")
        await consumer.settle()
        async with SdkWorker(kind, worker_url(server)) as provider:
            await _provide(provider)
            told = await provider.trigger_event()
            assert (told["trigger_event"], told["type"], told["function_id"], told["config"]) == (
                "register", WEBHOOK, "compat::on_hook", {"path": "/late"})
            # The provider fires the binding the way iii's examples do: by calling its function.
            assert (await provider.trigger("compat::on_hook", {"body": "ping"}))["result"] == "handled"
            assert (await consumer.invoked())["data"]["body"] == "ping"
            assert provider.trigger_events.empty()


async def test_provider_that_reconnects_gets_every_binding_again(kind: str, server: Server) -> None:
    proxy = TcpProxy(server.worker_port)  # the network between the provider and the engine
    await proxy.start()
    try:
        async with SdkWorker(kind, proxy.url) as provider, SdkWorker(kind, worker_url(server)) as consumer:
            await _provide(provider)
            await provider.settle()
            await _bind(consumer, "/a")
            await _bind(consumer, "/b")
            first = {(await provider.trigger_event())["config"]["path"] for _ in range(2)}
            assert first == {"/a", "/b"}
            proxy.blocked = True
            proxy.sever()
            await wait_until(lambda: not server.engine.trigger_types.provides(WEBHOOK))
            await _bind(consumer, "/c")  # bound while the provider is away: held
            await consumer.settle()
            proxy.blocked = False  # the SDK reconnects and registers its trigger type again
            again = [await provider.trigger_event(wait=15) for _ in range(3)]
            assert {e["trigger_event"] for e in again} == {"register"}
            assert {e["config"]["path"] for e in again} == {"/a", "/b", "/c"}
    finally:
        await proxy.close()


async def test_consumer_unregister_and_disconnect_reach_the_provider(kind: str, server: Server) -> None:
    async with SdkWorker(kind, worker_url(server)) as provider:
        await _provide(provider)
        await provider.settle()
        async with SdkWorker(kind, worker_url(server)) as consumer:
            await _bind(consumer, "/kept", handle="kept")
            await _bind(consumer, "/dropped", handle="dropped")
            bound = {e["config"]["path"]: e["id"] for e in [await provider.trigger_event() for _ in range(2)]}
            assert set(bound) == {"/kept", "/dropped"}
            await consumer.result("unregister_trigger", handle="dropped")
            assert await provider.trigger_event() == {"trigger_event": "unregister", "type": WEBHOOK,
                                                      "id": bound["/dropped"]}
        # the consumer's process exited: its remaining binding is unregistered at the provider
        assert await provider.trigger_event() == {"trigger_event": "unregister", "type": WEBHOOK,
                                                  "id": bound["/kept"]}
        await provider.settle()
        assert provider.trigger_events.empty()
