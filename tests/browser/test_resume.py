"""The browser client after a lost connection: it resumes from its position (the missed events, in order) or,
when the engine cannot vouch for them, takes a fresh snapshot that replaces its state. Never a silent gap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from streamhub.config import AdapterConfig
from streamhub.transport.server import Server
from tests.browser.conftest import OpenPage, http_base, screenshot, until
from tests.browser.proxy import TcpProxy
from tests.conftest import make_config, worker_url
from tests.helpers import TestWorker
from tests.process import EngineProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


def todo(item: str, title: str, completed: bool = False) -> dict[str, Any]:
    return {"stream_name": "todos", "group_id": "u", "item_id": item,
            "data": {"id": item, "title": title, "completed": completed}}


def gone(item: str) -> dict[str, Any]:
    return {"stream_name": "todos", "group_id": "u", "item_id": item}


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(engine: Server) -> AsyncIterator[TcpProxy]:
    """The network between the page and the in-process engine."""
    net = TcpProxy(engine.stream_port)
    await net.start()
    try:
        yield net
    finally:
        await net.close()


@pytest_asyncio.fixture(loop_scope="session")
async def short_log_engine() -> AsyncIterator[Server]:
    srv = Server(make_config(adapter=AdapterConfig(change_log_size=3)))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


async def watch(tab: Page, url: str, **options: Any) -> None:
    await tab.evaluate("([url, options]) => { harness.connect('c', url, options);"
                       " harness.live('todos', 'c', 'todos', 'u') }", [url, options])
    await until(tab, "() => harness.log('todos').length === 1")


async def events(tab: Page) -> list[dict[str, Any]]:
    return [e for e in await tab.evaluate("harness.log('todos')") if "event_type" in e]


async def test_dropped_connection_resumes_with_exactly_the_missed_events(
        engine: Server, proxy: TcpProxy, open_page: OpenPage) -> None:
    async with TestWorker(worker_url(engine)) as worker:
        await worker.call("stream.set", todo("t1", "Buy milk"))
        await worker.call("stream.set", todo("t2", "Walk the dog"))
        tab = await open_page(http_base(engine.stream_port))
        await watch(tab, proxy.url)
        await worker.call("stream.set", todo("t3", "Water plants"))
        await until(tab, "() => harness.log('todos').length === 2")
        before = await tab.evaluate("harness.position('todos')")

        proxy.blocked = True
        proxy.sever()
        await until(tab, "() => harness.log('c').some(e => e.status === 'reconnecting')")
        await worker.call("stream.set", todo("t1", "Buy milk", completed=True))
        await worker.call("stream.delete", gone("t2"))
        await worker.call("stream.set", todo("t4", "Call mum"))
        await worker.call("stream.send", {"stream_name": "todos", "group_id": "u", "type": "ping", "data": 1})
        await worker.call("stream.set", todo("t4", "Call mum today"))
        assert len(await events(tab)) == 2  # really cut off: nothing reached the page
        proxy.blocked = False

        await until(tab, "() => harness.log('todos').length === 8")
        resumed = (await events(tab))[2:]
        sync = resumed[0]
        assert sync["event_type"] == "sync" and sync["recovered"] is True and "data" not in sync["event"]
        assert sync["position"] == {"epoch": before["epoch"], "offset": before["offset"] + 5}
        assert [(e["event_type"], e["id"], e["offset"], e["replayed"]) for e in resumed[1:]] == [
            ("update", "t1", before["offset"] + 1, True), ("delete", "t2", before["offset"] + 2, True),
            ("create", "t4", before["offset"] + 3, True), ("event", None, before["offset"] + 4, True),
            ("update", "t4", before["offset"] + 5, True)]
        assert await tab.evaluate("harness.state('todos')") == [
            {"id": "t1", "title": "Buy milk", "completed": True},
            {"id": "t3", "title": "Water plants", "completed": False},
            {"id": "t4", "title": "Call mum today", "completed": False}]
        assert await tab.locator("#view-todos li").all_inner_texts() == ["Buy milk", "Water plants", "Call mum today"]

        await worker.call("stream.delete", gone("t3"))
        await until(tab, "() => harness.log('todos').length === 9")
        live = (await events(tab))[-1]
        assert (live["event_type"], live["offset"], live["replayed"]) == ("delete", before["offset"] + 6, False)
        assert proxy.accepted >= 2


async def test_client_cut_off_as_slow_reconnects_and_resumes(
        engine: Server, proxy: TcpProxy, open_page: OpenPage) -> None:
    async with TestWorker(worker_url(engine)) as worker:
        tab = await open_page(http_base(engine.stream_port))
        await watch(tab, proxy.url)
        (conn,) = engine.clients.connections.values() if engine.clients else ()
        proxy.blocked = True  # new connections only: the 1013 close still travels the open one
        conn.outbox.cut_off()  # what the engine does to a client whose output backs up
        await until(tab, "() => harness.log('c').some(e => e.status === 'reconnecting')")
        for i in range(3):
            await worker.call("stream.set", todo(f"t{i}", f"while away {i}"))
        proxy.blocked = False
        await until(tab, "() => harness.log('todos').length === 5")
        statuses = [e for e in await tab.evaluate("harness.log('c')") if e.get("status") == "reconnecting"]
        assert statuses[0]["code"] == 1013
        sync, *replayed = (await events(tab))[1:]
        assert sync["recovered"] is True
        assert [(e["id"], e["replayed"]) for e in replayed] == [("t0", True), ("t1", True), ("t2", True)]
        assert [t["title"] for t in await tab.evaluate("harness.state('todos')")] == [
            "while away 0", "while away 1", "while away 2"]


async def test_log_too_short_gives_a_fresh_snapshot_that_replaces_the_state(
        short_log_engine: Server, open_page: OpenPage) -> None:
    net = TcpProxy(short_log_engine.stream_port)
    await net.start()
    try:
        async with TestWorker(worker_url(short_log_engine)) as worker:
            for item in ("t1", "t2", "t3"):
                await worker.call("stream.set", todo(item, item))
            tab = await open_page(http_base(short_log_engine.stream_port))
            await watch(tab, net.url)
            before = await tab.evaluate("harness.position('todos')")
            net.blocked = True
            net.sever()
            await until(tab, "() => harness.log('c').some(e => e.status === 'reconnecting')")
            await worker.call("stream.delete", gone("t2"))
            for i in range(5):  # more changes than the log keeps
                await worker.call("stream.set", todo("t4", f"t4 v{i}"))
            net.blocked = False
            await until(tab, "() => harness.log('todos').length === 2")
            sync = (await events(tab))[1]
            assert sync["event_type"] == "sync" and sync["recovered"] is False
            assert sync["position"] == {"epoch": before["epoch"], "offset": before["offset"] + 6}
            expected = [{"id": "t1", "title": "t1", "completed": False},
                        {"id": "t3", "title": "t3", "completed": False},
                        {"id": "t4", "title": "t4 v4", "completed": False}]
            assert sync["data"] == expected
            assert await tab.evaluate("harness.state('todos')") == expected  # t2 is gone: replaced, not merged
    finally:
        await net.close()


async def test_engine_restart_pages_reconnect_and_show_the_right_list(tmp_path: Path, open_page: OpenPage) -> None:
    engine = EngineProcess(tmp_path)
    await engine.start()
    net = TcpProxy(engine.stream_port)
    await net.start()
    tabs: list[Page] = []
    try:
        async with TestWorker(engine.worker_url) as worker:
            for item, title in (("t1", "Buy milk"), ("t2", "Walk the dog"), ("t3", "Water plants")):
                await worker.call("stream.set", todo(item, title))
        via_net, direct = tabs = [await open_page(http_base(engine.stream_port)) for _ in range(2)]
        await watch(via_net, net.url)  # the test decides when this one may come back
        await watch(direct, engine.stream_url)  # this one finds the engine by itself
        before = await via_net.evaluate("harness.position('todos')")

        net.blocked = True
        engine.kill()
        assert await engine.stop() == -9
        net.sever()
        await engine.start()  # same ports, same durable store, a new epoch
        async with TestWorker(engine.worker_url) as worker:
            await worker.call("stream.set", todo("t1", "Buy milk", completed=True))
            await worker.call("stream.delete", gone("t2"))
            await worker.call("stream.set", todo("t4", "Call mum"))
            net.blocked = False
            expected = [{"id": "t1", "title": "Buy milk", "completed": True},
                        {"id": "t3", "title": "Water plants", "completed": False},
                        {"id": "t4", "title": "Call mum", "completed": False}]
            await until(via_net, "() => harness.log('todos').length === 2")
            sync = (await events(via_net))[1]
            assert sync["event_type"] == "sync" and sync["recovered"] is False
            assert sync["position"]["epoch"] != before["epoch"] and sync["data"] == expected
            for tab in tabs:
                await until(tab, "expected => JSON.stringify(harness.state('todos')) === JSON.stringify(expected)",
                            expected)
                restarted = [e for e in await events(tab) if e["event_type"] == "sync"][-1]
                assert restarted["recovered"] is False and restarted["position"]["epoch"] != before["epoch"]
            await worker.call("stream.set", todo("t5", "Live again"))
            for tab in tabs:
                await until(tab, "() => document.querySelectorAll('#view-todos li').length === 4")
            await screenshot(via_net, "after-restart")
    finally:
        for tab in tabs:
            await tab.evaluate("harness.close('c')")
        await net.close()
        await engine.stop()
