"""The admin console in real Chromium: workers, streams and live items on the page, written by a real worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page

from streamhub.config import AdminConfig
from streamhub.transport.server import Server
from tests.browser.conftest import screenshot, until
from tests.conftest import make_config, running, worker_url
from tests.helpers import TestWorker

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "console-token"


@pytest_asyncio.fixture(loop_scope="session")
async def engine_with_admin() -> AsyncIterator[Server]:
    async with running(replace(make_config(), admin=AdminConfig(port=0, token=TOKEN))) as srv:
        yield srv


async def open_console(context: BrowserContext, srv: Server, problems: list[str], token: str = TOKEN) -> Page:
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    await page.goto(f"http://127.0.0.1:{srv.admin_port}/console?token={token}")
    return page


async def test_a_write_from_a_worker_appears_on_the_console(context: BrowserContext,
                                                            engine_with_admin: Server) -> None:
    srv = engine_with_admin
    problems: list[str] = []
    async with TestWorker(worker_url(srv)) as worker:
        async def on_order(data: Any) -> None:
            return None

        await worker.send({"type": "invokefunction", "function_id": "engine::workers::register",
                           "data": {"name": "orders-service", "runtime": "python", "version": "3.11"},
                           "action": {"type": "void"}})
        await worker.register("orders::on_change", on_order)
        await worker.trigger("stream", "orders::on_change", {"stream_name": "orders"})
        await worker.call("stream::set", {"stream_name": "orders", "group_id": "eu", "item_id": "o1",
                                          "data": {"id": "o1", "total": 10}})
        page = await open_console(context, srv, problems)
        assert "token" not in page.url  # taken out of the address bar
        await until(page, "() => window.consoleReady === true")
        # the worker, its function and its trigger
        workers = await until(page, "() => document.querySelector('#workers tbody')?.innerText.includes("
                                    "'orders-service') && document.querySelector('#workers tbody').innerText")
        assert "orders::on_change" in workers and "stream" in workers
        # browse: the stream and its group, then the group's items
        await page.click("#streams button[data-group='eu']")
        await until(page, "() => document.querySelector('#group tbody')?.innerText.includes('\"total\":10')")
        await until(page, "() => document.querySelector('#status').dataset.state === 'open'")
        # live: a write from the worker appears in the items and the tail without a reload
        await worker.call("stream::set", {"stream_name": "orders", "group_id": "eu", "item_id": "o2",
                                          "data": {"id": "o2", "total": 25}})
        await worker.call("stream::update", {"stream_name": "orders", "group_id": "eu", "item_id": "o1",
                                             "ops": [{"type": "set", "path": "total", "value": 11}]})
        await until(page, "() => document.querySelector('#group tbody').innerText.includes('\"total\":25')")
        await until(page, "() => document.querySelector('#group tbody').innerText.includes('\"total\":11')")
        tail = await until(page, "() => document.querySelectorAll('#tail li').length >= 2 && "
                                 "[...document.querySelectorAll('#tail li')].map(li => li.dataset.kind)")
        assert tail[:2] == ["update", "create"]  # newest first
        # a new group shows up in the stream list without a reload
        await worker.call("stream::set", {"stream_name": "orders", "group_id": "us", "item_id": "o3", "data": 1})
        await until(page, "() => !!document.querySelector(\"#streams button[data-group='us']\")")
        subscriptions = await until(page, "() => document.querySelector(\"[data-metric='subscriptions'] .value\")"
                                          "?.textContent === '1' && 1")
        assert subscriptions == 1
        path = await screenshot(page, "console")
        assert path.stat().st_size > 0
        await page.close()
    assert problems == []


async def test_the_console_refuses_a_wrong_token(context: BrowserContext, engine_with_admin: Server) -> None:
    page = await context.new_page()
    response = await page.goto(f"http://127.0.0.1:{engine_with_admin.admin_port}/console?token=nope")
    assert response is not None and response.status == 401
    assert "admin token is required" in await page.inner_text("body")
    await page.close()
