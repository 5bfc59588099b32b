"""Raw WebSocket clients on plain sockets: no client library, so no client-side objects in the server's GC counts."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import orjson

from streamhub.transport.server import Server
from tests.helpers import timeout, wait_until

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (all-zero mask: the payload goes as is)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + b"\0\0\0\0" + payload


class RawClient:
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
        await asyncio.get_running_loop().sock_sendall(self.sock, frame(0x8, struct.pack("!H", 1000)))
        await self.read_until(b"\x88")
        self.sock.close()

    async def answer_close(self) -> None:
        """The server closed (1001): answer with a close frame and hang up."""
        await self.read_until(b"\x88")
        await asyncio.get_running_loop().sock_sendall(self.sock, frame(0x8, struct.pack("!H", 1000)))
        self.sock.close()


async def stream_client(srv: Server, index: int) -> RawClient:
    client = RawClient()
    join = {"type": "join", "data": {"subscriptionId": f"s{index}", "streamName": "s", "groupId": "g"}}
    await client.open(srv.stream_port, b'"sync"', frame(0x1, orjson.dumps(join)))
    return client


async def worker_client(srv: Server, index: int) -> RawClient:
    client = RawClient()
    await client.open(srv.worker_port, b"workerregistered")
    return client


async def end_all(srv: Server, ports: dict[str, list[RawClient]], ending: str) -> None:
    """End every connection (``ports``: port name -> its clients) one way, then wait until the server let go.

    ``drop``: the client hangs up without a close frame; ``clean``: close handshake from the client; ``server``:
    the server closes them all (1001, as at shutdown). Done when no session, admitted socket or aiohttp
    connection task is left.
    """
    clients = [client for port in ports.values() for client in port]
    if ending == "drop":
        for client in clients:
            client.sock.close()
    elif ending == "clean":
        await asyncio.gather(*(client.close_cleanly() for client in clients))
    else:
        closers = [srv.workers.close_all()]
        if srv.clients is not None:
            closers.append(srv.clients.close_all())
        closing = asyncio.gather(*closers)
        await asyncio.gather(*(client.answer_close() for client in clients))
        await closing
    await wait_until(lambda: not any(srv.session_counts().values()) and not _connection_tasks()
                     and all(srv.guards[port].open_connections == 0 for port in ports), timeout(20))
    for _ in range(3):  # the handlers' last callbacks (transport close) run on the next loop turns
        await asyncio.sleep(0)


def _connection_tasks() -> list[asyncio.Task[Any]]:
    """aiohttp's tasks of open connections (``RequestHandler.start`` and ``_handle_request``)."""
    return [task for task in asyncio.all_tasks() if task.get_coro().__qualname__.startswith("RequestHandler.")]
