"""The stream port serves the browser client next to the WebSocket, without disturbing it."""

from __future__ import annotations

import asyncio
import shutil
from importlib import resources
from pathlib import Path

import aiohttp
import pytest

from streamhub.transport.server import Server
from tests.conftest import make_config, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker, timeout


def _http(srv: Server) -> str:
    return f"http://127.0.0.1:{srv.stream_port}"


async def test_client_js_and_types_are_served_with_content_type_cors_and_etag(server: Server) -> None:
    shipped = resources.files("streamhub.transport").joinpath("static", "streamhub.js").read_bytes()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{_http(server)}/client.js", headers={"Origin": "http://elsewhere:8080"}) as js:
            assert js.status == 200 and js.headers["Content-Type"] == "text/javascript; charset=utf-8"
            assert js.headers["Access-Control-Allow-Origin"] == "*"
            assert await js.read() == shipped
            etag = js.headers["ETag"]
        async with http.get(f"{_http(server)}/client.js", headers={"If-None-Match": etag}) as again:
            assert again.status == 304 and await again.read() == b""
        async with http.get(f"{_http(server)}/client.d.ts") as types:
            assert types.status == 200 and types.headers["Content-Type"].startswith("application/typescript")
            assert "export declare class Client" in await types.text()
        async with http.get(f"{_http(server)}/client.mjs") as missing:
            assert missing.status == 404


async def test_websocket_root_still_works_beside_the_files(server: Server) -> None:
    async with Subscriber(stream_url(server)) as sub:
        await sub.join("s", "g")
        assert (await sub.next())["event"]["type"] == "sync"


async def test_auth_guards_the_socket_not_the_public_client_code() -> None:
    srv = Server(make_config(auth_function="auth.never"))
    await srv.start()
    try:
        async with TestWorker(f"ws://127.0.0.1:{srv.worker_port}/") as worker:
            async def never(_: object) -> None:
                return None

            await worker.register("auth.never", never)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{_http(srv)}/client.js") as js:
                    assert js.status == 200
                async with http.ws_connect(f"{_http(srv)}/") as _:
                    raise AssertionError("the auth function refuses every socket")
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 401
    finally:
        await srv.close()


_NODE_SCRIPT = """
import { Client } from "./client.mjs";
let client;
try {
  client = new Client(process.argv[2]);
} catch (err) {
  console.log(`${err.name}: ${err.message}`);
  process.exit(0);
}
client.stream.subscribe("todos", "inbox", (event) => {
  console.log(`${event.event_type} ${JSON.stringify(event.data)}`);
  client.close();
  process.exit(0);
});
"""


async def _node(srv: Server, tmp_path: Path, *flags: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{_http(srv)}/client.js") as js:
        (tmp_path / "client.mjs").write_bytes(await js.read())  # what a Node user would download and import
    (tmp_path / "main.mjs").write_text(_NODE_SCRIPT)
    proc = await asyncio.create_subprocess_exec("node", *flags, "main.mjs", stream_url(srv), cwd=tmp_path,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
async def test_client_js_in_node_says_what_to_pass_without_a_global_websocket(server: Server, tmp_path: Path) -> None:
    """Node 20 (this machine's) has no global WebSocket; Node 22 has one, as Node 20 does with the flag below."""
    assert await _node(server, tmp_path, "--no-experimental-websocket") == (
        'TypeError: streamhub: this runtime has no global WebSocket (Node.js before 22?): pass one, e.g. '
        'new Client(url, { WebSocket: (await import("ws")).WebSocket })')
    async with TestWorker(worker_url(server)) as worker:
        await worker.call("stream.set", {"stream_name": "todos", "group_id": "inbox", "item_id": "t1",
                                         "data": {"title": "Milk"}})
    assert await _node(server, tmp_path, "--experimental-websocket") == 'sync [{"title":"Milk"}]'
