"""A closed connection must leave no cyclic garbage: reference counting frees it, no full collection needed.

Why it matters: a frozen heap (``streamhub.heap``) is only ever freed by reference counting, so a connection
that died in a reference cycle would leak for good; and cyclic garbage is what makes full collections grow with
the number of connections. N real sockets connect (stream port: upgrade, ``join``, ``sync``; worker port:
upgrade, ``workerregistered``), then close in one of the ways a connection ends; once the server has let go of
every one, ``gc.collect()`` must find (almost) nothing.

Tolerance: a per-connection cycle is at least two objects per connection, so ``2 * N`` or more; ``N // 4``
leaves room for a few objects the test run itself may leave (one-off caches, a logging record) and still
fails on any per-connection cycle. Runs on uvloop, the loop ``streamhub serve`` uses: the standard library's
selector transport of Python 3.11 holds itself in a cycle (its read callback), which is not ours to break.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
from collections.abc import Awaitable, Callable

import orjson
import pytest
import uvloop

from streamhub.transport.server import Server
from tests.conftest import make_config
from tests.helpers import timeout, wait_until

COUNT = 200
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (all-zero mask: the payload goes as is)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + b"\0\0\0\0" + payload


class _Client:
    """One raw WebSocket client on a plain socket (no client library, so no client-side garbage to count)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.received = b""

    async def open(self, port: int, until: bytes, first: bytes = b"") -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", port))
        await loop.sock_sendall(self.sock, (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode() + first)
        await self.read_until(until)

    async def read_until(self, marker: bytes) -> None:
        loop = asyncio.get_running_loop()
        while marker not in self.received:
            data = await loop.sock_recv(self.sock, 65536)
            if not data:
                raise ConnectionError(f"closed before {marker!r}: {self.received[-200:]!r}")
            self.received += data

    async def close_cleanly(self) -> None:
        """Close handshake from the client: send 1000, wait for the server's close frame, then hang up."""
        self.received = b""
        await asyncio.get_running_loop().sock_sendall(self.sock, _frame(0x8, struct.pack("!H", 1000)))
        await self.read_until(b"\x88")
        self.sock.close()

    async def answer_close(self) -> None:
        """The server closed (1001): answer with a close frame and hang up."""
        await self.read_until(b"\x88")
        await asyncio.get_running_loop().sock_sendall(self.sock, _frame(0x8, struct.pack("!H", 1000)))
        self.sock.close()


async def _stream_client(srv: Server, index: int) -> _Client:
    client = _Client()
    join = {"type": "join", "data": {"subscriptionId": f"s{index}", "streamName": "s", "groupId": "g"}}
    await client.open(srv.stream_port, b'"sync"', _frame(0x1, orjson.dumps(join)))
    return client


async def _worker_client(srv: Server, index: int) -> _Client:
    client = _Client()
    await client.open(srv.worker_port, b"workerregistered")
    return client


async def _cyclic_garbage(open_one: Callable[[Server, int], Awaitable[_Client]], ending: str, port: str,
                          heartbeat: bool) -> int:
    config = make_config(heartbeat_ms=30_000 if heartbeat else 0)
    srv = Server(config)
    await srv.start()
    try:
        clients = [await open_one(srv, i) for i in range(COUNT)]
        counts = srv.session_counts()
        assert counts[port] == COUNT
        tasks = len(asyncio.all_tasks())
        gc.collect()
        gc.disable()  # from here on only the collection below may free cyclic garbage
        try:
            if ending == "drop":
                for client in clients:
                    client.sock.close()
            elif ending == "clean":
                await asyncio.gather(*(client.close_cleanly() for client in clients))
            else:
                closing = asyncio.ensure_future(srv.clients.close_all() if port == "stream"
                                                else srv.workers.close_all())
                await asyncio.gather(*(client.answer_close() for client in clients))
                await closing
            guard = srv.guards[port]
            await wait_until(lambda: srv.session_counts()[port] == 0 and guard.open_connections == 0
                             and len(asyncio.all_tasks()) <= tasks - COUNT, timeout(20))
            for _ in range(3):  # the handlers' last callbacks (transport close) run on the next loop turns
                await asyncio.sleep(0)
            return gc.collect()
        finally:
            gc.enable()
    finally:
        await srv.close()


@pytest.mark.parametrize("heartbeat", [False, True], ids=["no-pings", "pings"])
@pytest.mark.parametrize("ending", ["drop", "clean", "server"])
def test_closed_stream_connections_leave_no_cyclic_garbage(ending: str, heartbeat: bool) -> None:
    garbage = uvloop.run(_cyclic_garbage(_stream_client, ending, "stream", heartbeat))
    assert garbage <= COUNT // 4, f"{garbage} objects of cyclic garbage after closing {COUNT} connections"


@pytest.mark.parametrize("ending", ["drop", "clean", "server"])
def test_closed_worker_connections_leave_no_cyclic_garbage(ending: str) -> None:
    garbage = uvloop.run(_cyclic_garbage(_worker_client, ending, "worker", False))
    assert garbage <= COUNT // 4, f"{garbage} objects of cyclic garbage after closing {COUNT} connections"
