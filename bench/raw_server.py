"""Baseline for the fan-out benchmark: the least a Python server can do to deliver the same frames.

A bare asyncio (uvloop) protocol: answer the WebSocket handshake, then on "go" (stdin) write ``events``
pre-encoded frames to every connection, ``per_tick`` frames joined into one write per connection per tick.

Usage: python -m bench.raw_server PORT EVENTS PER_TICK
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys

import orjson

from bench.fanout import DATA_BYTES

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


class Conn(asyncio.Protocol):
    def __init__(self, conns: list[asyncio.Transport]) -> None:
        self.conns = conns
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport in self.conns:
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        key = next(
            line.split(b":", 1)[1].strip()
            for line in self.buffer.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.conns.append(self.transport)


def frame(i: int) -> bytes:
    payload = orjson.dumps(
        {
            "type": "stream",
            "timestamp": 1_764_370_000_123,
            "streamName": "bench",
            "groupId": "g",
            "id": f"{i:08d}",
            "event": {"type": "create", "data": "x" * DATA_BYTES},
        }
    )
    header = bytes((0x81, len(payload))) if len(payload) < 126 else bytes((0x81, 126)) + len(payload).to_bytes(2, "big")
    return header + payload


async def main(port: int, events: int, per_tick: int) -> None:
    conns: list[asyncio.Transport] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(conns), "127.0.0.1", port)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for start in range(0, events, per_tick):
        chunk = b"".join(frame(i) for i in range(start, min(events, start + per_tick)))  # encoded once per tick
        for transport in conns:
            transport.write(chunk)
        await asyncio.sleep(0)
    while any(t.get_write_buffer_size() for t in conns):
        await asyncio.sleep(0.01)
    await loop.run_in_executor(None, sys.stdin.readline)
    server.close()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
