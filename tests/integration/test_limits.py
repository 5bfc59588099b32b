"""Connection limits on every port over real sockets: slowloris is timed out, excess sockets get 503, fds raised."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest

from streamhub.config import EngineConfig, RestApiConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker, timeout, wait_until

HANDSHAKE_MS = 300
PORTS = ("worker", "stream", "rest")


def limited(handshake_ms: int = HANDSHAKE_MS, max_connections: int = 100) -> EngineConfig:
    """Every port with the same small limits."""
    config = make_config(handshake_timeout_ms=handshake_ms, max_connections=max_connections)
    rest = RestApiConfig(port=0, handshake_timeout_ms=handshake_ms, max_connections=max_connections)
    return replace(config, handshake_timeout_ms=handshake_ms, max_connections=max_connections, rest_api=rest)


def port_of(srv: Server, name: str) -> int:
    return srv.ports[name]


class Raw:
    """A plain TCP client that sends what it is told, when it is told."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_all(self, wait: float = 5.0) -> bytes:
        """Everything until the server closes (TimeoutError if it does not)."""
        return await asyncio.wait_for(self.reader.read(), timeout(wait))

    def close(self) -> None:
        self.writer.close()


async def trickle(raw: Raw, stop: asyncio.Event) -> None:
    """Slowloris: a request line one byte every 50 ms, never finished."""
    line = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    for byte in line:
        if stop.is_set():
            return
        try:
            await raw.send(bytes([byte]))
        except ConnectionError:
            return
        await asyncio.sleep(0.05)


async def get(http: aiohttp.ClientSession, srv: Server, path: str = "/nothing") -> int:
    async with http.get(f"http://127.0.0.1:{srv.rest_port}{path}") as response:
        await response.read()
        return response.status


@pytest.fixture
async def srv() -> AsyncIterator[Server]:
    async with running(limited()) as server:
        yield server


async def test_slowloris_is_closed_with_408_on_every_port_while_real_clients_get_in(srv: Server) -> None:
    stop = asyncio.Event()
    slow = {name: [await Raw.open(port_of(srv, name)) for _ in range(8)] for name in PORTS}
    started = time.monotonic()
    attack = [asyncio.create_task(trickle(raw, stop)) for raws in slow.values() for raw in raws]
    try:
        # During the attack a worker, a subscriber and a REST request all get in and work.
        async with TestWorker(worker_url(srv)) as worker, Subscriber(stream_url(srv)) as sub, \
                aiohttp.ClientSession() as http:
            await sub.join("s", "g")
            assert (await sub.next())["event"]["type"] == "sync"
            await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 1})
            assert (await sub.next())["event"]["type"] == "create"
            assert await get(http, srv) == 404
            for name, raws in slow.items():
                replies = await asyncio.gather(*(raw.read_all() for raw in raws))
                assert all(reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for reply in replies), (name, replies)
                assert b"Connection: close" in replies[0]
            assert time.monotonic() - started >= HANDSHAKE_MS / 1000
            # The upgraded sockets outlived the header deadline: their timer stopped at the headers.
            await worker.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 2})
            assert (await sub.next())["event"]["type"] == "update"
            # The slow sockets left the count; the REST client's keep-alive socket may have timed out already.
            await wait_until(lambda: [srv.guards[name].open_connections for name in PORTS] in ([1, 1, 1], [1, 1, 0]))
    finally:
        stop.set()
        await asyncio.gather(*attack)
        for raws in slow.values():
            for raw in raws:
                raw.close()


async def test_connection_that_sends_nothing_is_closed(srv: Server) -> None:
    started = time.monotonic()
    raws = [await Raw.open(port_of(srv, name)) for name in PORTS]
    replies = await asyncio.gather(*(raw.read_all() for raw in raws))
    assert all(reply.startswith(b"HTTP/1.1 408 ") for reply in replies), replies
    assert time.monotonic() - started >= 0.9 * HANDSHAKE_MS / 1000
    for raw in raws:
        raw.close()


async def test_rest_keepalive_times_each_requests_headers_and_closes_idle_connections(srv: Server) -> None:
    request = b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    steady = await Raw.open(srv.rest_port)
    for _ in range(5):  # 5 requests 150 ms apart: longer than the deadline in all, each one within it
        await steady.send(request)
        head = await asyncio.wait_for(steady.reader.readuntil(b"\r\n\r\n"), timeout(5))
        assert head.startswith(b"HTTP/1.1 404 ")
        body_size = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await steady.reader.readexactly(body_size)
        await asyncio.sleep(HANDSHAKE_MS / 2000)
    # A second request that never finishes its headers, and an idle keep-alive socket, are both closed.
    started = time.monotonic()
    await steady.send(b"GET /nothing HT")
    idle = await Raw.open(srv.rest_port)
    await idle.send(request)
    closed = await asyncio.gather(steady.read_all(), idle.read_all())
    assert closed[0] == b"" and closed[1].startswith(b"HTTP/1.1 404 ")
    assert time.monotonic() - started >= 0.9 * HANDSHAKE_MS / 1000
    await wait_until(lambda: srv.guards["rest"].open_connections == 0)
    steady.close()
    idle.close()


@pytest.mark.parametrize("flooded", PORTS)
async def test_excess_connections_get_503_others_keep_working_and_the_cap_frees_up(flooded: str) -> None:
    async with running(limited(handshake_ms=10_000, max_connections=3)) as srv, \
            aiohttp.ClientSession() as http, contextlib.AsyncExitStack() as stack:
        inside = await _connected_client(srv, http, flooded, stack)  # got in before the flood
        holders = [await Raw.open(port_of(srv, flooded)) for _ in range(2)]  # half-open: no request at all
        await wait_until(lambda: srv.guards[flooded].open_connections == 3)
        excess = await Raw.open(port_of(srv, flooded))
        await excess.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = await excess.read_all()
        assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), reply
        assert b"Connection: close\r\n" in reply and reply.endswith(f"on the {flooded} port\n".encode())
        async with aiohttp.ClientSession() as fresh:
            if flooded == "rest":
                with pytest.raises(aiohttp.ClientResponseError) as refused:
                    async with fresh.get(f"http://127.0.0.1:{srv.rest_port}/x") as response:
                        response.raise_for_status()
            else:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await fresh.ws_connect(f"ws://127.0.0.1:{port_of(srv, flooded)}/")
            assert refused.value.status == 503
            await inside()  # the connection that got in first still works
            for name in PORTS:  # and the other ports do not feel this one's flood
                if name != flooded:
                    await _port_works(srv, fresh, name)
            holders.pop().close()
            await wait_until(lambda: srv.guards[flooded].open_connections == 2)
            await _port_works(srv, fresh, flooded)
        for raw in [*holders, excess]:
            raw.close()


async def _connected_client(srv: Server, http: aiohttp.ClientSession, name: str,
                            stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
    """A client that is connected to port ``name`` for the rest of ``stack``; the result checks it still works."""
    if name == "rest":
        assert await get(http, srv) == 404  # the session keeps this connection alive and reuses it

        async def check() -> None:
            assert await get(http, srv) == 404
        return check
    if name == "worker":
        worker = await stack.enter_async_context(TestWorker(worker_url(srv)))

        async def call() -> None:
            assert await worker.call("stream.list_groups", {"stream_name": "s"}) == []
        return call
    sub = await stack.enter_async_context(Subscriber(stream_url(srv)))

    async def join() -> None:
        await sub.join("s", "g")
        assert (await sub.next())["event"]["type"] == "sync"
    return join


async def _port_works(srv: Server, http: aiohttp.ClientSession, name: str) -> None:
    if name == "rest":
        assert await get(http, srv) == 404
    elif name == "worker":
        async with TestWorker(worker_url(srv)) as worker:
            assert await worker.call("stream.list_groups", {"stream_name": "s"}) == []
    else:
        async with Subscriber(stream_url(srv)) as sub:
            await sub.join("s", "g")
            assert (await sub.next())["event"]["type"] == "sync"


async def test_start_raises_the_open_files_limit_to_the_hard_limit_and_logs_it(
        caplog: pytest.LogCaptureFixture) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 2048:
        pytest.skip(f"needs a finite hard limit of at least 2048 open files (have {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        with caplog.at_level(logging.INFO, logger="streamhub.transport.limits"):
            async with running(make_config()):
                assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert f"open files limit raised to {hard} (was 1024)" in lines
        # make_config's ports allow 101,000 connections in all: more than the limit is reported (INFO: the defaults
        # exceed most limits, so a WARNING would fire on every default start).
        noted = any("max_connections add up to 101000" in line for line in lines)
        assert noted == (hard < 101_000)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_limit_that_cannot_be_raised_is_a_warning_not_fatal(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 2048:
        pytest.skip(f"needs a finite hard limit of at least 2048 open files (have {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    def refuse(*_: object) -> None:
        raise ValueError("not allowed")

    try:
        monkeypatch.setattr(resource, "setrlimit", refuse)
        with caplog.at_level(logging.INFO, logger="streamhub.transport.limits"):
            async with running(make_config()) as srv, Subscriber(stream_url(srv)) as sub:
                await sub.join("s", "g")
                assert (await sub.next())["event"]["type"] == "sync"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("open files limit stays at 1024" in line and str(hard) in line for line in warnings), warnings
    finally:
        monkeypatch.undo()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
