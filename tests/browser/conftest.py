"""Real headless Chromium (the Debian package, never a downloaded browser) against the served browser client.

One browser per test session; each test gets a fresh browser context (its own tabs, storage and cache). The
test page is served by a tiny HTTP server on its own port and imports ``/client.js`` from the engine's stream
port, cross-origin, the way an application page does. Everything here runs on the session's event loop, since
Playwright's objects belong to the loop that started them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from streamhub.transport.server import Server
from tests.conftest import running
from tests.helpers import free_port, timeout

CHROMIUM = os.environ.get("STREAMHUB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

OpenPage = Callable[[str], Awaitable[Page]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: ./scripts/test installs the Debian packages chromium and "
                    "chromium-driver (or set STREAMHUB_CHROMIUM)")
    async with async_playwright() as playwright:
        # launch() adds --headless and a fresh temporary --user-data-dir, removed on close.
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def page_origin() -> AsyncIterator[str]:
    """Serves ``page.html`` from its own origin."""
    page = (Path(__file__).parent / "page.html").read_bytes()

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html")

    app = web.Application()
    async def no_icon(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app.add_routes([web.get("/page.html", serve), web.get("/favicon.ico", no_icon)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 900, "height": 500})
    ctx.set_default_timeout(timeout(10) * 1000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(context: BrowserContext, page_origin: str) -> AsyncIterator[OpenPage]:
    """Opens a tab on the test page, loading the client from the engine at ``http://127.0.0.1:<port>``.

    Any uncaught error or console error in a tab fails the test.
    """
    problems: list[str] = []

    async def open_tab(engine_http: str) -> Page:
        page = await context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
        page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" and "WebSocket connection" not in msg.text else None)
        await page.goto(f"{page_origin}/page.html?client={engine_http}/client.js")
        await page.wait_for_function("document.title === 'ready'")
        return page

    yield open_tab
    assert problems == []


@pytest_asyncio.fixture(loop_scope="session")
async def engine() -> AsyncIterator[Server]:
    """An in-process engine (memory store) on free ports, on the session's loop."""
    async with running() as srv:
        yield srv


def http_base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def until(page: Page, predicate: str, arg: Any = None, wait: float = 10.0) -> Any:
    """Wait until the JS ``predicate(arg)`` is truthy in ``page``; returns its value."""
    handle = await page.wait_for_function(predicate, arg=arg, timeout=timeout(wait) * 1000)
    return await handle.json_value()


async def eventually(condition: Callable[[], bool], wait: float = 5.0) -> None:
    """Poll a Python-side condition (what the engine or a worker saw) until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout(wait)
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def screenshot(page: Page, name: str) -> Path:
    """Keep a picture of the page under ``artifacts/browser/`` (a CI artifact)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
