"""The served browser client in real Chromium: group and item subscriptions, event shapes, unsubscribe, auth."""

from __future__ import annotations

from typing import Any

import pytest

from streamhub.adapters.memory import MemoryAdapter
from streamhub.core.positions import Position
from streamhub.errors import AdapterError
from streamhub.transport.server import Server
from tests.browser.conftest import OpenPage, eventually, http_base, screenshot, until
from tests.conftest import make_config, stream_url, worker_url
from tests.helpers import TestWorker

pytestmark = pytest.mark.asyncio(loop_scope="session")


def todo(item: str, title: str, completed: bool = False, group: str = "user_123") -> dict[str, Any]:
    return {"stream_name": "todos", "group_id": group, "item_id": item,
            "data": {"id": item, "title": title, "completed": completed}}


def kinds(log: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["event_type"], e["id"]) for e in log if "event_type" in e]


async def test_two_tabs_see_a_workers_changes_live(engine: Server, open_page: OpenPage) -> None:
    async with TestWorker(worker_url(engine)) as worker:
        await worker.call("stream.set", todo("t1", "Buy milk"))
        tabs = [await open_page(http_base(engine.stream_port)) for _ in range(2)]
        for tab in tabs:
            await tab.evaluate("url => { harness.connect('c', url); harness.live('todos', 'c', 'todos', 'user_123') }",
                               stream_url(engine))
            await until(tab, "() => document.querySelectorAll('#view-todos li').length === 1")
        await worker.call("stream.set", todo("t2", "Walk the dog"))
        await worker.call("stream.set", todo("t1", "Buy milk", completed=True))
        await worker.call("stream.delete", {"stream_name": "todos", "group_id": "user_123", "item_id": "t2"})
        await worker.call("stream.set", todo("t3", "Write tests"))
        for tab in tabs:
            await until(tab, "() => harness.log('todos').length === 5")
            assert await tab.evaluate("harness.state('todos')") == [
                {"id": "t1", "title": "Buy milk", "completed": True},
                {"id": "t3", "title": "Write tests", "completed": False}]
            items = tab.locator("#view-todos li")
            assert await items.all_inner_texts() == ["Buy milk", "Write tests"]
            assert await items.first.get_attribute("class") == "done"
            log = await tab.evaluate("harness.log('todos')")
            assert kinds(log) == [("sync", None), ("create", "t2"), ("update", "t1"), ("delete", "t2"),
                                  ("create", "t3")]
            offsets = [e["offset"] for e in log[1:]]
            assert offsets == list(range(log[0]["position"]["offset"] + 1, log[0]["position"]["offset"] + 5))
        await screenshot(tabs[1], "two-tabs")


async def test_events_carry_the_documented_and_the_wire_shape(engine: Server, open_page: OpenPage) -> None:
    tab = await open_page(http_base(engine.stream_port))
    await tab.evaluate("url => { harness.connect('c', url); harness.subscribe('group', 'c', 'todos', 'u') }",
                       stream_url(engine))
    await until(tab, "() => harness.log('group').length === 1")
    async with TestWorker(worker_url(engine)) as worker:
        await worker.call("stream.set", todo("t1", "Buy milk", group="u"))
        await worker.call("stream.send", {"stream_name": "todos", "group_id": "u", "event_type": "typing",
                                          "data": {"who": "ann"}})
        await until(tab, "() => harness.log('group').length === 3")
    sync, created, custom = await tab.evaluate("harness.log('group')")
    assert sync["event_type"] == "sync" and sync["event"]["sync"] == {"data": []} and sync["recovered"] is False
    assert created["event"]["create"]["data"] == {"id": "t1", "title": "Buy milk", "completed": False}
    assert created["event"]["type"] == "create" and created["event"]["data"] == created["event"]["create"]["data"]
    assert created["id"] == "t1" and created["event_type"] == "create" and created["data"]["title"] == "Buy milk"
    assert created["stream_name"] == created["streamName"] == "todos" and created["group_id"] == "u"
    assert created["replayed"] is False and isinstance(created["timestamp"], int)
    assert custom["event"]["event"] == {"type": "typing", "event_type": "typing", "data": {"who": "ann"}}
    assert custom["event_type"] == "event" and custom["data"] == {"who": "ann"} and custom["id"] is None


async def test_item_subscription_and_overlapping_subscriptions_see_each_change_once(
        engine: Server, open_page: OpenPage) -> None:
    tab = await open_page(http_base(engine.stream_port))
    await tab.evaluate("""url => {
        harness.connect('c', url);
        harness.live('item', 'c', 'todos', 'u', 't1');
        harness.live('groupA', 'c', 'todos', 'u');
        harness.subscribe('groupB', 'c', 'todos', 'u');
        harness.subscribe('itemB', 'c', 'todos', 'u', 't1');
    }""", stream_url(engine))
    await until(tab, "() => ['item', 'groupA', 'groupB', 'itemB'].every(n => harness.log(n).length === 1)")
    async with TestWorker(worker_url(engine)) as worker:
        await worker.call("stream.set", todo("t1", "Buy milk", group="u"))
        await worker.call("stream.set", todo("t2", "Other", group="u"))
        await worker.call("stream.set", todo("t1", "Buy oat milk", group="u"))
        await worker.call("stream.delete", {"stream_name": "todos", "group_id": "u", "item_id": "t1"})
        await worker.call("stream.set", todo("t2", "Other!", group="u"))  # last change: everyone has seen it all
        await until(tab, "() => harness.log('groupA').length === 6 && harness.log('groupB').length === 6")
        await until(tab, "() => harness.log('item').length === 4 && harness.log('itemB').length === 4")
    item_log = await tab.evaluate("harness.log('item')")
    assert kinds(item_log) == [("sync", "t1"), ("create", "t1"), ("update", "t1"), ("delete", "t1")]
    assert item_log[0]["data"] is None and item_log[2]["event"]["update"]["data"]["title"] == "Buy oat milk"
    assert await tab.evaluate("harness.state('item')") is None
    assert kinds(await tab.evaluate("harness.log('itemB')")) == kinds(item_log)
    group_kinds = [("sync", None), ("create", "t1"), ("create", "t2"), ("update", "t1"), ("delete", "t1"),
                   ("update", "t2")]
    assert kinds(await tab.evaluate("harness.log('groupA')")) == group_kinds
    assert kinds(await tab.evaluate("harness.log('groupB')")) == group_kinds
    assert await tab.evaluate("harness.state('groupA')") == [{"id": "t2", "title": "Other!", "completed": False}]


async def test_unsubscribe_stops_events_and_leaves_on_the_engine(engine: Server, open_page: OpenPage) -> None:
    leaves: list[Any] = []

    async def on_leave(event: Any) -> None:
        leaves.append(event)

    async with TestWorker(worker_url(engine)) as worker:
        await worker.register("on_leave", on_leave)
        await worker.trigger("stream_leave", "on_leave", {"stream_name": "todos"})
        tab = await open_page(http_base(engine.stream_port))
        await tab.evaluate("url => { harness.connect('c', url); harness.subscribe('gone', 'c', 'todos', 'u');"
                           " harness.subscribe('stays', 'c', 'todos', 'u') }", stream_url(engine))
        await until(tab, "() => harness.log('gone').length === 1 && harness.log('stays').length === 1")
        await worker.call("stream.set", todo("t1", "one", group="u"))
        await until(tab, "() => harness.log('gone').length === 2")
        await tab.evaluate("harness.unsubscribe('gone'); harness.unsubscribe('gone')")  # twice is harmless
        await eventually(lambda: len(leaves) == 1)
        assert leaves[0]["subscription_id"] == await tab.evaluate("harness.log('gone')[0].subscriptionId")
        await worker.call("stream.set", todo("t2", "two", group="u"))
        await worker.call("stream.set", todo("t3", "three", group="u"))
        await until(tab, "() => harness.log('stays').length === 4")
        assert len(await tab.evaluate("harness.log('gone')")) == 2
        assert engine.engine.hub.watched() == [("todos", "u")]  # the other subscription still holds the group


async def test_token_reaches_the_auth_function_and_a_refused_page_keeps_retrying(open_page: OpenPage) -> None:
    srv = Server(make_config(auth_function="auth.check"))
    await srv.start()
    seen: list[Any] = []

    async def check(request: Any) -> Any:
        seen.append(request)
        token = request["query_params"].get("token", [None])[0]
        offered = request["headers"].get("sec-websocket-protocol", "")
        if token == "s3cret.A-b_c" or "tok.s3cret" in offered:
            return {"context": {"user": "ann"}}
        return None

    async def on_join(event: Any) -> Any:
        return {"unauthorized": event["context"] is None or event["group_id"] == "secret"}

    try:
        async with TestWorker(worker_url(srv)) as worker:
            await worker.register("auth.check", check)
            await worker.register("on_join", on_join)
            await worker.trigger("stream_join", "on_join", {"stream_name": "todos"})
            tab = await open_page(http_base(srv.stream_port))
            await tab.evaluate("""url => {
                harness.connect('query', url, {token: 's3cret.A-b_c'});
                harness.subscribe('ok', 'query', 'todos', 'u');
                harness.subscribe('secret', 'query', 'todos', 'secret');
                harness.connectWithTokenFunction('fn', url, 's3cret.A-b_c');
                harness.subscribe('viaFunction', 'fn', 'todos', 'u');
                harness.connect('proto', url, {protocols: ['streamhub', 'tok.s3cret']});
                harness.subscribe('viaProtocol', 'proto', 'todos', 'u');
                harness.connect('wrong', url, {token: 'nope'});
                harness.subscribe('refused', 'wrong', 'todos', 'u');
            }""", stream_url(srv))
            for name in ("ok", "viaFunction", "viaProtocol"):
                await until(tab, "n => harness.log(n).length === 1", name)
                assert (await tab.evaluate("n => harness.log(n)", name))[0]["event_type"] == "sync"
            await until(tab, "() => harness.log('secret').length === 1")
            refused = (await tab.evaluate("harness.log('secret')"))[0]
            assert refused["event_type"] == "unauthorized" and refused["reason"] == "refused"
            await until(tab, "() => harness.log('wrong').filter(e => e.status === 'reconnecting').length >= 3")
            assert await tab.evaluate("harness.log('refused')") == []
    finally:
        await srv.close()
    tokens = [r["query_params"].get("token") for r in seen]
    assert ["s3cret.A-b_c"] in tokens and ["nope"] in tokens
    assert any(r["headers"].get("sec-websocket-protocol") == "streamhub, tok.s3cret" for r in seen)


async def test_bad_arguments_fail_at_once_with_a_message_naming_them(engine: Server, open_page: OpenPage) -> None:
    tab = await open_page(http_base(engine.stream_port))
    errors = await tab.evaluate("""async (url) => {
        const { Client } = await import(new URLSearchParams(location.search).get('client'));
        const attempt = (f) => { try { f(); return null; } catch (e) { return `${e.name}: ${e.message}`; } };
        const client = new Client(url);
        const errors = [
            attempt(() => new Client('localhost:3112')),
            attempt(() => new Client('ftp://localhost:3112')),
            attempt(() => client.stream.subscribe('todos', '', () => {})),
            attempt(() => client.stream.subscribe('todos', 'u', 'not a function')),
            attempt(() => client.stream.subscribeItem('todos', 'u', 7, () => {})),
            attempt(() => client.on('message', () => {})),
        ];
        client.close();
        errors.push(attempt(() => client.stream.subscribe('todos', 'u', () => {})));
        return errors;
    }""", stream_url(engine))
    assert errors == [
        "TypeError: streamhub Client: url must be a ws://, wss://, http(s):// or page-relative URL such as "
        "'wss://streams.example.com', got \"localhost:3112\"",
        "TypeError: streamhub Client: url must be a ws://, wss://, http(s):// or page-relative URL such as "
        "'wss://streams.example.com', got \"ftp://localhost:3112\"",
        'TypeError: streamhub subscribe: groupId must be a non-empty string, got ""',
        "TypeError: streamhub subscribe: onEvent must be a function",
        "TypeError: streamhub subscribe: options.itemId must be a non-empty string, got 7",
        'TypeError: streamhub Client.on: unknown event "message" (use "status" or "error")',
        "Error: streamhub Client: subscribe after close()",
    ]


class FlakySnapshots(MemoryAdapter):
    """A store whose first two snapshot reads fail: a backend outage cannot be caused on demand in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 2

    async def snapshot(self, stream: str, group: str, item: str | None) -> tuple[Any, Position]:
        if self.failures > 0:
            self.failures -= 1
            raise AdapterError("store unavailable (injected)")
        return await super().snapshot(stream, group, item)


async def test_a_join_the_engine_could_not_answer_is_retried(open_page: OpenPage) -> None:
    srv = Server(make_config(), adapter=FlakySnapshots())
    await srv.start()
    try:
        tab = await open_page(http_base(srv.stream_port))
        await tab.evaluate("url => { harness.connect('c', url); harness.subscribe('todos', 'c', 'todos', 'u') }",
                           stream_url(srv))
        await until(tab, "() => harness.log('todos').length === 1")
        assert (await tab.evaluate("harness.log('todos')"))[0]["event_type"] == "sync"
        errors = [e for e in await tab.evaluate("harness.log('c')") if "error" in e]
        assert [e["code"] for e in errors] == ["adapter_error", "adapter_error"]
        assert "store unavailable" in errors[0]["error"]
        await tab.evaluate("harness.close('c')")
    finally:
        await srv.close()
