"""Presence in the served browser client, in real Chromium: who is in a group (`members`, kept by presence events),
the one-off `presence()` request (answered, refused by a join guard, timed out), and the member list across a cut
network: the presence sync after a reconnect replaces it, so nobody who left meanwhile lingers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web
from playwright.async_api import Page

from streamhub.transport.server import Server
from tests.browser.conftest import OpenPage, http_base, screenshot, until
from tests.browser.proxy import TcpProxy
from tests.conftest import make_config, stream_url, worker_url
from tests.helpers import TestWorker, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def named() -> AsyncIterator[Server]:
    """An engine whose auth function names each connection by its token; a join guard refuses group ``secret``."""
    srv = Server(make_config(auth_function="auth.name"))
    await srv.start()

    async def name(request: Any) -> Any:
        token = request["query_params"].get("token", [None])[0]
        return {"context": {"presence": {"name": token}, "api_key": f"secret-of-{token}"}}

    async def guard(event: Any) -> Any:
        return {"unauthorized": event["group_id"] == "secret"}

    try:
        async with TestWorker(worker_url(srv)) as worker:
            await worker.register("auth.name", name)
            await worker.register("guard", guard)
            await worker.trigger("stream_join", "guard", {"stream_name": "todos"})
            yield srv
    finally:
        await srv.close()


async def join(tab: Page, url: str, who: str, *, client: str = "c", sub: str = "todos") -> None:
    """Connect as ``who`` and keep a live view of todos/u with presence."""
    await tab.evaluate("([url, who, client, sub]) => { harness.connect(client, url, {token: who});"
                       " harness.live(sub, client, 'todos', 'u', null, {presence: true}) }", [url, who, client, sub])


async def names(tab: Page, want: list[str], sub: str = "todos", wait: float = 10.0) -> None:
    """Wait until ``sub``'s members are exactly ``want`` (by name)."""
    await until(tab, "([sub, want]) => JSON.stringify(harness.names(sub)) === JSON.stringify(want)", [sub, want],
                wait=wait)


def presence_events(log: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["action"], e["member"]["info"]["name"] if "member" in e else sorted(
        m["info"]["name"] for m in e["members"])) for e in log if e.get("event_type") == "presence"]


async def test_two_tabs_see_each_other_and_a_closed_tab_leaves(named: Server, open_page: OpenPage) -> None:
    ann, bob = [await open_page(http_base(named.stream_port)) for _ in range(2)]
    await join(ann, stream_url(named), "ann")
    await names(ann, ["ann"])
    await ann.evaluate("harness.subscribe('plain', 'c', 'todos', 'u')")  # no presence asked: no presence events
    await ann.evaluate("harness.subscribe('item', 'c', 'todos', 'u', 't1', {presence: true})")  # same connection
    await until(ann, "() => harness.log('plain').length === 1")
    await names(ann, ["ann"], sub="item")
    await join(bob, stream_url(named), "bob")
    for tab in (ann, bob):
        await names(tab, ["ann", "bob"])
    await names(ann, ["ann", "bob"], sub="item")

    members = (await bob.evaluate("harness.members('todos')"))["members"]
    (of_ann,) = [m for m in members if m["info"] == {"name": "ann"}]  # only the context's presence field
    ann_subs = await ann.evaluate("['todos', 'plain', 'item'].map(harness.subscriptionId)")
    assert sorted(of_ann["subscription_ids"]) == sorted(ann_subs)  # one member per connection
    assert sorted(of_ann["item_ids"], key=str) == sorted([None, None, "t1"], key=str)
    assert isinstance(of_ann["joined_at"], int) and of_ann["connection_id"]
    # Ann's two presence subscriptions each got bob's join once (the copy meant for the other one is dropped).
    assert presence_events(await ann.evaluate("harness.log('todos')")) == [("sync", ["ann"]), ("join", "bob")]
    assert presence_events(await ann.evaluate("harness.log('item')")) == [("sync", ["ann"]), ("join", "bob")]
    assert presence_events(await bob.evaluate("harness.log('todos')")) == [("sync", ["ann", "bob"])]
    await screenshot(bob, "presence-two-tabs")

    await bob.close()  # the tab goes away: its connection closes
    await names(ann, ["ann"], wait=2.0)
    log = await ann.evaluate("harness.log('todos')")
    assert presence_events(log)[-1] == ("leave", "bob")
    leave = log[-1]
    assert leave["count"] == 1 and [m["info"]["name"] for m in leave["members"]] == ["ann"]
    assert leave["event"]["presence"]["action"] == "leave" and "offset" not in leave
    assert not [e for e in await ann.evaluate("harness.log('plain')") if e.get("event_type") == "presence"]
    assert await ann.evaluate("harness.members('todos').count") == 1


async def test_presence_request_answers_or_rejects_with_the_guards_reason(
        named: Server, open_page: OpenPage) -> None:
    ann, bob = [await open_page(http_base(named.stream_port)) for _ in range(2)]
    await join(ann, stream_url(named), "ann")
    await names(ann, ["ann"])
    await bob.evaluate("url => harness.connect('c', url, {token: 'bob'})", stream_url(named))
    asked = await bob.evaluate("harness.presence('c', 'todos', 'u')")  # no subscription: the guards admit it
    assert asked["answer"]["count"] == 1 and "truncated" not in asked["answer"]
    assert [(m["info"], m["subscription_ids"]) for m in asked["answer"]["members"]] == [
        ({"name": "ann"}, [await ann.evaluate("harness.subscriptionId('todos')")])]
    assert await bob.evaluate("harness.presence('c', 'todos', 'empty')") == {"answer": {"members": [], "count": 0}}

    refused = await bob.evaluate("harness.presence('c', 'todos', 'secret')")
    assert refused["error"]["code"] == "unauthorized" and refused["error"]["reason"] == "refused"
    assert "unauthorized" in refused["error"]["message"]
    errors = [e for e in await bob.evaluate("harness.log('c')") if "error" in e]
    assert errors == []  # a refusal is the promise's, not the client's error listener's
    rejected = await bob.evaluate("harness.presence('c', 'todos', '')")
    assert rejected["error"]["message"] == 'streamhub presence: groupId must be a non-empty string, got ""'


async def test_presence_request_times_out_against_an_engine_that_does_not_answer(
        engine: Server, open_page: OpenPage) -> None:
    """An engine without presence (the reference iii engine logs the frame and says nothing): a clear timeout."""
    frames: list[str] = []

    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                frames.append(message.data)
        return ws

    app = web.Application()
    app.add_routes([web.get("/", silent)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        tab = await open_page(http_base(engine.stream_port))  # the client module comes from a real engine
        result = await tab.evaluate("""async (url) => {
            harness.connect('c', url);
            const started = performance.now();
            const result = await harness.presence('c', 'todos', 'u', {timeout: 300});
            const waited = performance.now() - started;
            harness.close('c');  // the silent server's handler ends with the connection
            return {...result, waited};
        }""", f"ws://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()
    assert result["error"]["code"] == "timeout" and result["error"]["reason"] is None
    assert result["error"]["message"] == "streamhub presence: no answer for todos/u within 300 ms (client open)"
    assert 250 <= result["waited"] < 3000
    assert len(frames) == 1 and '"type":"presence"' in frames[0]


async def test_reconnect_replaces_the_member_list_with_no_stale_member(named: Server, open_page: OpenPage) -> None:
    net = TcpProxy(named.stream_port)
    await net.start()
    try:
        cut, other = [await open_page(http_base(named.stream_port)) for _ in range(2)]
        await join(cut, net.url, "ann")  # through the network the test can cut
        await names(cut, ["ann"])
        await join(other, stream_url(named), "bob")
        await names(cut, ["ann", "bob"])
        before = {m["info"]["name"]: m["connection_id"]
                  for m in (await cut.evaluate("harness.members('todos')"))["members"]}

        net.blocked = True
        net.sever()
        await until(cut, "() => harness.log('c').some(e => e.status === 'reconnecting')")
        await names(other, ["bob"])  # the engine saw ann's connection die
        # While ann is away: bob's page leaves and carol arrives. Ann's page misses both events.
        await other.evaluate("harness.close('c')")
        await join(other, stream_url(named), "carol", client="c2", sub="again")
        await names(other, ["carol"], sub="again")
        assert await cut.evaluate("harness.names('todos')") == ["ann", "bob"]  # cut off: still the old list

        net.blocked = False
        await names(cut, ["ann", "carol"])  # replaced by the new connection's presence sync
        after = (await cut.evaluate("harness.members('todos')"))
        assert after["count"] == 2
        ids = {m["info"]["name"]: m["connection_id"] for m in after["members"]}
        assert ids["ann"] != before["ann"]  # its own dead connection is gone too
        assert before["bob"] not in ids.values()
        assert presence_events(await cut.evaluate("harness.log('todos')")) == [
            ("sync", ["ann"]), ("join", "bob"), ("sync", ["ann", "carol"])]
        await names(other, ["ann", "carol"], sub="again")
        await screenshot(cut, "presence-after-reconnect")
    finally:
        await net.close()
