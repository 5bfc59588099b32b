"""The SDK against fail-closed join guards and the subscription cap, over real sockets.

A worker's join guard survives the worker's connection: while the network to it is cut, joins are refused
(``reason == "guard_unavailable"``); once the SDK has reconnected and re-registered, the guard judges again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamhub.core.triggers import JOIN
from streamhub.sdk import Backoff, Client, StreamClient, SubscriptionError
from streamhub.transport.server import Server
from tests.browser.proxy import TcpProxy
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import timeout, wait_until


@pytest.fixture
async def proxy(server: Server) -> AsyncIterator[TcpProxy]:
    """The network between a worker and the engine's worker port, which the test can cut."""
    cut = TcpProxy(server.worker_port)
    await cut.start()
    try:
        yield cut
    finally:
        await cut.close()


async def _refusal(streams: StreamClient, group: str) -> SubscriptionError:
    sub = streams.subscribe("chat", group)
    with pytest.raises(SubscriptionError) as refused:
        await sub.wait_synced(timeout(5))
    assert refused.value.code == "unauthorized" and not sub.active
    return refused.value


async def test_guard_refuses_while_its_worker_is_cut_off_and_judges_again_after_reconnect(
        server: Server, proxy: TcpProxy) -> None:
    judged: list[str] = []

    def guard(event: Any) -> Any:
        judged.append(event.group_id)
        return {"unauthorized": event.group_id == "secret"}

    async with Client(proxy.url, call_timeout=timeout(5), backoff=Backoff(initial=0.05, maximum=0.2)) as worker, \
            StreamClient(stream_url(server)) as streams:
        worker.register_function("chat::guard", guard, triggers=[{"type": "stream_join",
                                                                    "config": {"stream_name": "chat"}}])
        await worker.call("stream.list_all", {})
        refused = await _refusal(streams, "secret")
        assert refused.reason == "refused" and "(refused)" in refused.message
        await streams.subscribe("chat", "open").wait_synced(timeout(5))

        proxy.blocked = True
        proxy.sever()
        await wait_until(lambda: not server.engine.functions.exists("chat::guard"))
        assert (await _refusal(streams, "open")).reason == "guard_unavailable"
        assert judged == ["secret", "open"]

        proxy.blocked = False
        guards = server.engine.triggers.of_type(JOIN)
        await wait_until(lambda: server.engine.functions.exists("chat::guard")
                         and [g.owner for g in server.engine.triggers.of_type(JOIN)] == [worker.worker_id])
        assert [g.id for g in server.engine.triggers.of_type(JOIN)] == [g.id for g in guards]  # same trigger
        assert (await _refusal(streams, "secret")).reason == "refused"
        await streams.subscribe("chat", "open").wait_synced(timeout(5))
        assert judged == ["secret", "open", "secret", "open"]


async def test_unavailable_guard_reason_reaches_async_iterators(server: Server) -> None:
    async with Client(worker_url(server), call_timeout=timeout(5)) as worker, \
            StreamClient(stream_url(server)) as streams:
        entry = worker.register_function("chat::guard", lambda event: {})
        await worker.register_trigger("stream_join", "chat::guard", {"stream_name": "chat"})
        entry.unregister()
        await worker.call("stream.list_all", {})
        events = [event async for event in streams.subscribe("chat", "g")]
        assert [(e.event_type, e.event.reason) for e in events] == [("unauthorized", "guard_unavailable")]


async def test_join_over_the_cap_fails_that_subscription_only() -> None:
    async with running(make_config(max_subscriptions_per_connection=2)) as srv, \
            StreamClient(stream_url(srv)) as streams:
        first = streams.subscribe("todos", "a")
        second = streams.subscribe("todos", "b")
        await first.wait_synced(timeout(5))
        await second.wait_synced(timeout(5))
        third = streams.subscribe("todos", "c")
        with pytest.raises(SubscriptionError) as over:
            await third.wait_synced(timeout(5))
        assert over.value.code == "too_many_subscriptions" and "(2)" in over.value.message
        assert not third.active and first.active and second.active
        second.unsubscribe()
        await streams.subscribe("todos", "d").wait_synced(timeout(5))  # room again after a leave
