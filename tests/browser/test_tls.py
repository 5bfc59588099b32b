"""The browser client over wss:// in real Chromium: an https engine gives wss URLs, never a downgrade to ws."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from playwright.async_api import Browser

from streamhub.config import TlsConfig
from streamhub.transport.server import Server
from tests.browser.conftest import until
from tests.conftest import make_config, running, worker_url
from tests.helpers import TestWorker, timeout

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def tls_engine(tmp_path: Path) -> AsyncIterator[Server]:
    """An engine whose stream port speaks TLS with a certificate from a throwaway CA."""
    issued = trustme.CA().issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    async with running(make_config(tls=TlsConfig(cert_file=str(cert), key_file=str(key)))) as server:
        yield server


async def test_client_served_over_https_connects_over_wss(browser: Browser, page_origin: str,
                                                          tls_engine: Server) -> None:
    base = f"https://127.0.0.1:{tls_engine.stream_port}"
    context = await browser.new_context(ignore_https_errors=True)  # the test CA is not in Chromium's store
    context.set_default_timeout(timeout(10) * 1000)
    try:
        tab = await context.new_page()
        await tab.goto(f"{page_origin}/page.html?client={base}/client.js")
        await tab.wait_for_function("document.title === 'ready'")
        urls = await tab.evaluate("""async (base) => {
            const { Client } = await import(`${base}/client.js`);
            const made = [new Client(), new Client(base), new Client(base.replace('https:', 'wss:') + '/')];
            const urls = made.map((c) => c.url);
            made.forEach((c) => c.close());
            return urls;
        }""", base)
        wss = f"wss://127.0.0.1:{tls_engine.stream_port}/"
        assert urls == [wss, wss, wss]
        await tab.evaluate("() => { harness.connect('c'); harness.subscribe('todos', 'c', 'todos', 'u1') }")
        await until(tab, "() => harness.log('todos').some((e) => e.event_type === 'sync')")
        async with TestWorker(worker_url(tls_engine)) as worker:
            await worker.call("stream.set", {"stream_name": "todos", "group_id": "u1", "item_id": "t1",
                                             "data": {"id": "t1", "title": "over tls"}})
        created = await until(tab, "() => harness.log('todos').find((e) => e.event_type === 'create')")
        assert created["data"] == {"id": "t1", "title": "over tls"}
        assert await tab.evaluate("harness.log('c').map((e) => e.status)") == ["open"]
    finally:
        await context.close()
