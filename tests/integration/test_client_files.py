"""The stream port serves the browser client next to the WebSocket, without disturbing it."""

from __future__ import annotations

from importlib import resources

import aiohttp

from streamhub.transport.server import Server
from tests.conftest import make_config, stream_url
from tests.helpers import Subscriber, TestWorker


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
