"""examples/todo in real Chromium: the engine (a real ``streamhub serve`` on the example's config, durable store),
the example's own ``run.py`` (worker + page server), two tabs, HTTP writes from the test and clicks in the pages,
an engine killed and restarted under them, and each page showing who else has the list open (presence, named by
the token run.py signed for it)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, Route
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import screenshot, until
from tests.helpers import free_port, timeout
from tests.process import EngineProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "todo"
USER = "user_123"

LIST_JS = """() => [...document.querySelectorAll('#todos li')].map(
    (li) => [li.querySelector('.title').textContent, li.classList.contains('done')])"""


@dataclass
class TodoApp:
    engine: EngineProcess
    api: str
    page: str
    output: list[str] = field(default_factory=list)


@pytest_asyncio.fixture(loop_scope="session")
async def todo_app(tmp_path: Path) -> AsyncIterator[TodoApp]:
    """The example's engine config run for real, and ``run.py --no-engine`` (the worker and the page server)."""
    api_port, page_port = free_port(), free_port()
    engine = EngineProcess(tmp_path, config=EXAMPLE / "config.yaml", env={
        "API_PORT": str(api_port), "PAGE_PORT": str(page_port), "TODO_DATA": str(tmp_path / "data")})
    await engine.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE / "run.py"), "--no-engine", env=engine.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    app = TodoApp(engine, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{page_port}/?user={USER}")
    assert proc.stdout is not None
    reader: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(timeout(20)):
            while not (line := (await proc.stdout.readline()).decode()).startswith("todo app ready"):
                assert line, "".join(app.output)
                app.output.append(line)
        reader = asyncio.create_task(_collect(proc.stdout, app.output))
        yield app
    finally:
        proc.terminate()
        await proc.wait()
        if reader is not None:
            await reader
        await engine.stop()


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode())


async def open_tab(context: BrowserContext, app: TodoApp, problems: list[str], name: str = "Ann") -> Page:
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    # While the engine is down the browser logs failed WebSocket attempts: expected, everything else is a bug.
    page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" and "WebSocket connection" not in msg.text else None)
    await page.goto(f"{app.page}&name={name}")
    await until(page, "() => document.body.dataset.ready && document.querySelector('#status').textContent === 'open'")
    return page


async def shows(page: Page, todos: list[list[Any]], summary: str) -> None:
    """Wait until the page lists exactly ``todos`` ([title, done] in order) under ``summary``."""
    predicate = f"""([want, summary]) => JSON.stringify(({LIST_JS})()) === JSON.stringify(want)
        && document.querySelector('#summary').textContent === summary"""
    try:
        await until(page, predicate, [todos, summary])
    except PlaywrightTimeout:
        seen = (await page.evaluate(LIST_JS), await page.text_content("#summary"))
        assert seen == (todos, summary)


async def post_todo(http: aiohttp.ClientSession, app: TodoApp, title: str) -> str:
    async with http.post(f"{app.api}/todos", json={"userId": USER, "title": title}) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    todo_id: str = body["id"]
    return todo_id


async def test_two_tabs_live_and_engine_restart(context: BrowserContext, todo_app: TodoApp) -> None:
    problems: list[str] = []
    tab_a = await open_tab(context, todo_app, problems, "Ann")
    tab_b = await open_tab(context, todo_app, problems, "Bob")
    async with aiohttp.ClientSession() as http:
        milk = await post_todo(http, todo_app, "Buy milk")  # the documentation's fetch, from outside the page
        for tab in (tab_a, tab_b):
            await shows(tab, [["Buy milk", False]], "0 of 1 done")

        await tab_a.fill("#add input", "Walk the dog")  # the page's own form: POST across origins (CORS)
        await tab_a.press("#add input", "Enter")
        await shows(tab_b, [["Buy milk", False], ["Walk the dog", False]], "0 of 2 done")

        await tab_a.click(f'li[data-id="{milk}"] .toggle')  # PATCH /todos/:id from tab A ...
        await shows(tab_b, [["Buy milk", True], ["Walk the dog", False]], "1 of 2 done")  # ... seen in tab B
        await tab_b.click('li:has-text("Walk the dog") .delete')  # DELETE /todos/:id from tab B
        await shows(tab_a, [["Buy milk", True]], "1 of 1 done")
        await screenshot(tab_b, "todo-two-tabs")

        todo_app.engine.kill()
        await todo_app.engine.stop()
        for tab in (tab_a, tab_b):
            await until(tab, "() => document.querySelector('#status').textContent === 'reconnecting'")
        await todo_app.engine.start()  # same ports, same durable store
        await post_after_restart(http, todo_app)
        for tab in (tab_a, tab_b):
            await until(tab, "() => document.querySelector('#status').textContent === 'open'")
            await shows(tab, [["Buy milk", True], ["Back again", False]], "1 of 2 done")
        await screenshot(tab_a, "todo-after-restart")
    assert any("todo create user_123/" in line and "Back again" in line for line in todo_app.output), todo_app.output
    assert problems == []


ERROR_JS = "() => document.querySelector('#error').textContent"


async def test_failed_writes_keep_the_text_revert_the_checkbox_and_say_why(context: BrowserContext,
                                                                          todo_app: TodoApp) -> None:
    """The API unreachable for a POST, answering 503 to a PATCH, then 400: the page loses nothing and says why."""
    problems: list[str] = []
    tab = await open_tab(context, todo_app, problems)
    async with aiohttp.ClientSession() as http:
        await post_todo(http, todo_app, "Pay rent")
    await shows(tab, [["Pay rent", False]], "0 of 1 done")

    async def unreachable(route: Route) -> None:
        await route.abort("connectionrefused")

    await tab.route("**/todos", unreachable)
    await tab.fill("#add input", "Call mum")
    await tab.press("#add input", "Enter")
    assert await until(tab, ERROR_JS) == ("Could not add “Call mum”: the server cannot be reached. Check your "
                                          "connection (or that the server runs) and try again.")
    assert await tab.input_value("#add input") == "Call mum"  # the typed text is still there
    await screenshot(tab, "todo-failed-add")
    await tab.unroute("**/todos")
    await tab.press("#add input", "Enter")  # the same text, sent again
    await shows(tab, [["Pay rent", False], ["Call mum", False]], "0 of 2 done")
    assert await tab.input_value("#add input") == "" and await tab.text_content("#error") == ""

    async def busy(route: Route) -> None:
        await route.fulfill(status=503, json={"error": "busy"}, headers={"Access-Control-Allow-Origin": "*"})

    await tab.route("**/todos/*", busy)
    await tab.click('li:has-text("Pay rent") .toggle')
    assert await until(tab, ERROR_JS) == ("Could not mark “Pay rent” as done: the server is busy or restarting. "
                                          "Try again in a moment.")
    assert not await tab.is_checked('li:has-text("Pay rent") .toggle')  # back to what the store holds
    await tab.unroute("**/todos/*")
    await shows(tab, [["Pay rent", False], ["Call mum", False]], "0 of 2 done")

    await tab.fill("#add input", "   ")  # passes the browser's `required`, refused by the worker (400)
    await tab.press("#add input", "Enter")
    assert await until(tab, ERROR_JS) == "Could not add “   ”: title is required (a non-empty string)."
    assert await tab.input_value("#add input") == "   "
    # The browser itself logs each failed request (refused, 503, 400); anything else would be the page's bug.
    assert [p for p in problems if "Failed to load resource" not in p] == []


OTHERS_JS = "() => [...document.querySelectorAll('#presence .who')].map((chip) => chip.textContent)"


async def others(page: Page, want: list[str], wait: float = 10.0) -> None:
    """Wait until the page shows exactly ``want`` as the others who have the list open."""
    try:
        await until(page, f"want => JSON.stringify(({OTHERS_JS})()) === JSON.stringify(want)", want, wait=wait)
    except PlaywrightTimeout:
        assert await page.evaluate(OTHERS_JS) == want


async def test_each_tab_shows_who_else_has_the_list_open(context: BrowserContext, todo_app: TodoApp) -> None:
    problems: list[str] = []
    ann = await open_tab(context, todo_app, problems, "Ann")
    await until(ann, "() => document.querySelector('#presence').textContent.includes('Nobody else')")
    assert await ann.text_content("#presence") == "You are Ann. Nobody else has this list open."
    bob = await open_tab(context, todo_app, problems, "Bob")
    await others(ann, ["Bob"])
    await others(bob, ["Ann"])
    carol = await open_tab(context, todo_app, problems, "Carol")
    await others(carol, ["Ann", "Bob"])
    await others(ann, ["Bob", "Carol"])
    assert await ann.text_content("#presence") == "You are Ann. Also here:BobCarol"
    async with aiohttp.ClientSession() as http:
        await post_todo(http, todo_app, "Plan the trip")
    await shows(ann, [["Plan the trip", False]], "0 of 1 done")
    await screenshot(ann, "todo-presence")

    started = time.monotonic()
    await bob.close()  # closing the tab closes its connection: the others see it leave
    await others(ann, ["Carol"], wait=2.0)
    await others(carol, ["Ann"], wait=2.0)
    assert time.monotonic() - started < timeout(2.0)
    assert problems == []


async def test_the_stream_port_admits_only_tokens_run_py_signed(todo_app: TodoApp) -> None:
    """todo-auth (worker.py) refuses a missing or forged token before any join: the 401 of the upgrade."""
    stream = f"http://127.0.0.1:{todo_app.engine.stream_port}/"
    async with aiohttp.ClientSession() as http:
        async with http.get(todo_app.page.split("?")[0] + "token", params={"name": "Mallory"}) as got:
            token = (await got.json())["token"]
        forged = token.split(".")[0] + "." + "0" * 64
        for params in ({}, {"token": forged}, {"token": "Mallory"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(stream, params=params)
            assert refused.value.status == 401
        async with http.ws_connect(stream, params={"token": token}) as ws:
            await ws.send_json({"type": "join", "data": {"subscriptionId": "s1", "streamName": "todos",
                                                         "groupId": USER, "presence": True}})
            assert (await ws.receive_json(timeout=timeout(5)))["event"]["type"] == "sync"
            presence = (await ws.receive_json(timeout=timeout(5)))["event"]
            assert [m["info"] for m in presence["members"]] == [{"name": "Mallory"}]  # never the whole context
        async with http.get(todo_app.page.split("?")[0] + "token", params={"name": ""}) as got:
            assert got.status == 400 and "name must be 1 to 40 characters" in (await got.json())["error"]


async def post_after_restart(http: aiohttp.ClientSession, app: TodoApp) -> None:
    """POST as soon as the worker has re-registered its routes (404 until then: no route yet)."""
    deadline = asyncio.get_running_loop().time() + timeout(10)
    while True:
        async with http.post(f"{app.api}/todos", json={"userId": USER, "title": "Back again"}) as response:
            if response.status == 201:
                return
            assert response.status == 404, await response.text()
        assert asyncio.get_running_loop().time() < deadline, "the worker did not re-register its routes"
        await asyncio.sleep(0.05)


async def test_example_config_and_run_py_agree_on_ports() -> None:
    """run.py's port defaults are the config's ``${VAR:default}`` defaults (else the page would look elsewhere)."""
    spec = importlib.util.spec_from_file_location("todo_run", EXAMPLE / "run.py")
    assert spec is not None and spec.loader is not None
    run_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_py)
    defaults: dict[str, int] = run_py.ports({})
    text = (EXAMPLE / "config.yaml").read_text()
    assert [name for name, port in defaults.items() if f"${{{name}:{port}}}" not in text] == []
    assert f"http://127.0.0.1:${{PAGE_PORT:{defaults['PAGE_PORT']}}}" in text  # CORS lets the page call the API
