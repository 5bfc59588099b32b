"""REST framing belongs to the server: what an ``http`` handler answers can never desync a keep-alive connection.

Every exchange runs over one raw HTTP/1.1 connection parsed strictly by the framing the server announced, so a
response whose length, chunking or status lies shows up as a broken next response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest

from streamhub.config import RestApiConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, running, worker_url
from tests.helpers import TestWorker, timeout

Headers = dict[str, list[str]]


class RawHttp:
    """One keep-alive HTTP/1.1 connection on a plain socket; each answer is read by its own framing only."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawHttp:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.writer is not None
        self.writer.close()

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    def done_sending(self) -> None:
        assert self.writer is not None
        self.writer.write_eof()

    async def request(self, method: str, path: str, body: bytes = b"", **extra: str) -> tuple[int, Headers, bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in extra.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await self.response()

    async def response(self) -> tuple[int, Headers, bytes]:
        """Status, headers (lower-case names, every value) and body; fails on any framing it cannot trust."""
        assert self.reader is not None
        async with asyncio.timeout(timeout(5)):
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status_line, *lines = head[:-4].split("\r\n")
            version, code, _ = status_line.split(" ", 2)
            assert version == "HTTP/1.1", status_line
            headers: Headers = {}
            for line in lines:
                name, value = line.split(":", 1)
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            return int(code), headers, await self._body(headers)

    async def eof(self) -> bool:
        assert self.reader is not None
        async with asyncio.timeout(timeout(5)):
            return await self.reader.read(1) == b""

    async def _body(self, headers: Headers) -> bytes:
        assert self.reader is not None
        assert not ("content-length" in headers and "transfer-encoding" in headers), headers
        if "transfer-encoding" in headers:
            assert headers["transfer-encoding"] == ["chunked"], headers
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                chunks.append((await self.reader.readexactly(size + 2))[:-2])
            assert await self.reader.readexactly(2) == b"\r\n"
            return b"".join(chunks)
        lengths = headers.get("content-length", ["0"])
        assert len(lengths) == 1, headers
        return await self.reader.readexactly(int(lengths[0]))


@pytest.fixture
async def api() -> AsyncIterator[Server]:
    rest = RestApiConfig(port=0, default_timeout_ms=2000, body_timeout_ms=300, cors_allowed_origins=("http://app.test",))
    async with running(replace(make_config(), rest_api=rest)) as srv:
        yield srv


@contextlib.asynccontextmanager
async def serving(srv: Server, routes: dict[str, Any]) -> AsyncIterator[TestWorker]:
    """A worker answering GET ``/<name>`` with the fixed answer ``routes[name]``; ``/ok`` answers ``{"ok": true}``."""
    async with TestWorker(worker_url(srv)) as worker:
        for name, answer in {**routes, "ok": {"ok": True}}.items():
            async def handler(request: Any, answer: Any = answer) -> Any:
                return answer

            await worker.register(f"http-{name}", handler)
            await worker.trigger("http", f"http-{name}", {"api_path": f"/{name}", "http_method": "GET"})
        await worker.call("stream.list_all", {})  # registrations before this call are processed
        yield worker


def _dropped_warnings(caplog: pytest.LogCaptureFixture, route: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and "headers dropped" in r.getMessage()
               and f"GET {route} " in r.getMessage())


async def test_handler_framing_headers_never_desync_the_connection(api: Server,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    body = {"ok": True}
    routes = {
        "cl5": {"status_code": 200, "headers": {"Content-Length": "5", "X-Kept": "yes"}, "body": body},
        "cl999": {"status_code": 200, "headers": ["Content-Length: 999"], "body": body},
        "chunked": {"status_code": 200, "headers": {"Transfer-Encoding": "chunked"}, "body": body},
        "hop": {"headers": {"Connection": "close, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=1", "Upgrade": "h2c",
                            "TE": "trailers", "Trailer": "X-T", "Proxy-Authenticate": "Basic",
                            "Proxy-Authorization": "Basic eA=="}, "body": body},
        "split": {"headers": {"X-Bad": "a\r\nSet-Cookie: owned=1", "X-Nul": "a\x00b", "X-Evil\r\nSet-Cookie: a": "1",
                              "Bad Name": "1", "X-Fine": "fine"}, "body": body},
        "empty204": {"status_code": 204, "headers": {"Content-Length": "7"}, "body": body},
    }
    caplog.set_level(logging.WARNING, logger="streamhub")
    async with serving(api, routes):
        async with RawHttp(api.rest_port) as conn:
            for _ in range(2):  # twice: the WARNING is per route, not per request
                for name in routes:
                    status, headers, got = await conn.request("GET", f"/{name}")
                    assert status == (204 if name == "empty204" else 200), (name, status)
                    assert got == (b"" if name == "empty204" else b'{"ok":true}'), (name, got)
                    assert not {"connection", "keep-alive", "upgrade", "te", "trailer", "x-hop", "set-cookie",
                                "x-bad", "x-nul", "proxy-authenticate", "proxy-authorization"} & headers.keys()
                    status, _, got = await conn.request("GET", "/ok")
                    assert (status, got) == (200, b'{"ok":true}'), name  # the next answer parses cleanly
            status, headers, _ = await conn.request("GET", "/cl5")
            assert headers["x-kept"] == ["yes"] and headers["content-length"] == ["11"]
            _, headers, _ = await conn.request("GET", "/split")
            assert headers["x-fine"] == ["fine"]
    assert [_dropped_warnings(caplog, f"/{name}") for name in routes] == [1] * len(routes)
    assert _dropped_warnings(caplog, "/ok") == 0


@pytest.mark.parametrize("status", [101, 100, 199, 600, "200", True, 200.0, None])
async def test_status_outside_200_599_is_a_502_with_error_id(api: Server, caplog: pytest.LogCaptureFixture,
                                                             status: Any) -> None:
    caplog.set_level(logging.WARNING, logger="streamhub")
    async with serving(api, {"bad": {"status_code": status, "headers": {"Upgrade": "websocket"}, "body": "x"}}):
        async with RawHttp(api.rest_port) as conn:
            code, headers, got = await conn.request("GET", "/bad")
            assert code == 502 and headers["content-type"] == ["application/json"]
            answer = orjson.loads(got)
            assert answer["error"] == "bad handler response" and "status" not in got.decode()
            assert any(answer["error_id"] in r.getMessage() and "status_code" in r.getMessage()
                       for r in caplog.records)
            assert (await conn.request("GET", "/ok"))[::2] == (200, b'{"ok":true}')


async def test_content_types_and_bodies_as_the_handler_set_them(api: Server) -> None:
    routes = {
        "xml": {"headers": {"Content-Type": "text/xml"}, "body": "<a/>"},
        "plain": {"headers": ["content-type: text/plain"], "body": "héllo"},
        "custom": {"status_code": 201, "headers": {"content-type": "application/vnd.todo+json"}, "body": {"a": [1]}},
        "text": {"body": "just text"},
        "json": {"body": {"b": None}},
        "bare": ["the", "answer", "itself"],
        "cookies": {"headers": {"Set-Cookie": ["a=1", "b=2"]}, "body": "raw"},
    }
    expected = {
        "xml": ("text/xml", b"<a/>"),
        "plain": ("text/plain", "héllo".encode()),
        "custom": ("application/vnd.todo+json", b'{"a":[1]}'),
        "text": ("text/plain; charset=utf-8", b"just text"),
        "json": ("application/json", b'{"b":null}'),
        "bare": ("application/json", b'["the","answer","itself"]'),
        "cookies": ("text/plain; charset=utf-8", b"raw"),
    }
    async with serving(api, routes):
        async with RawHttp(api.rest_port) as conn:
            for name, (content_type, body) in expected.items():
                status, headers, got = await conn.request("GET", f"/{name}")
                assert status == (201 if name == "custom" else 200), name
                assert (headers["content-type"], got) == ([content_type], body), name
            _, headers, _ = await conn.request("GET", "/cookies")
            assert headers["set-cookie"] == ["a=1", "b=2"]  # a list value is one header line per item


async def test_slow_body_is_answered_408_and_closed(api: Server) -> None:
    calls: list[Any] = []
    async with TestWorker(worker_url(api)) as worker:
        async def handler(request: Any) -> Any:
            calls.append(request)
            return {"ok": True}

        await worker.register("post", handler)
        await worker.trigger("http", "post", {"api_path": "/post", "http_method": "POST"})
        await worker.call("stream.list_all", {})
        async with RawHttp(api.rest_port) as conn:
            assert (await conn.request("POST", "/post", b'{"a":1}', Content_Type="application/json"))[0] == 200
            conn.send(b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"
                      b'\r\n{"a":')  # and nothing more
            started = asyncio.get_running_loop().time()
            status, headers, got = await conn.response()
            waited = asyncio.get_running_loop().time() - started
            assert status == 408 and headers["connection"] == ["close"] and b"timeout_ms" in got
            assert 0.2 < waited < timeout(3)
            assert await conn.eof()
    assert len(calls) == 1  # the stalled request never reached the handler


async def test_body_over_the_limit_is_answered_413_and_closed(api: Server) -> None:
    async with TestWorker(worker_url(api)) as worker:
        await worker.register("post", lambda request: asyncio.sleep(0, {"ok": True}))
        await worker.trigger("http", "post", {"api_path": "/post", "http_method": "POST"})
        await worker.call("stream.list_all", {})
        async with RawHttp(api.rest_port) as conn:  # declared too large: refused before any byte of it is read
            conn.send(b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
            status, headers, got = await conn.response()
            assert status == 413 and headers["connection"] == ["close"] and b'"max_bytes":1048576' in got
            conn.done_sending()
            assert await conn.eof()
        async with RawHttp(api.rest_port) as conn:  # chunked, no length: refused once the limit is passed
            conn.send(b"POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
            conn.send(chunk * 17)
            assert (await conn.response())[0] == 413
            conn.done_sending()
            assert await conn.eof()
        async with RawHttp(api.rest_port) as conn:  # at the limit it passes
            status, _, _ = await conn.request("POST", "/post", b"a" * 1048576, Content_Type="text/plain")
            assert status == 200


async def test_cors_answers_vary_on_origin(api: Server) -> None:
    async with serving(api, {"v": {"headers": {"Vary": "Accept-Encoding"}, "body": {}}}):
        async with RawHttp(api.rest_port) as conn:
            _, headers, _ = await conn.request("GET", "/ok", Origin="http://app.test")
            assert headers["access-control-allow-origin"] == ["http://app.test"] and headers["vary"] == ["Origin"]
            _, headers, _ = await conn.request("GET", "/ok", Origin="http://evil.test")
            assert "access-control-allow-origin" not in headers and headers["vary"] == ["Origin"]
            _, headers, _ = await conn.request("GET", "/ok")
            assert headers["vary"] == ["Origin"]
            _, headers, _ = await conn.request("GET", "/v", Origin="http://app.test")
            assert headers["vary"] == ["Accept-Encoding", "Origin"]
            status, headers, _ = await conn.request("OPTIONS", "/ok", Origin="http://app.test",
                                                    Access_Control_Request_Method="GET",
                                                    Access_Control_Request_Headers="x-a")
            assert status == 204 and headers["vary"] == ["Origin", "Access-Control-Request-Headers"]
            assert headers["access-control-allow-headers"] == ["x-a"]
            status, headers, _ = await conn.request("GET", "/nothing", Origin="http://evil.test")
            assert status == 404 and headers["vary"] == ["Origin"]
