"""The raw limit: the least a Python server can do to deliver the same frames, on picows (our fastest library).

No routing, no storage, no JSON on the fan-out path: frames are encoded once and written straight to each
connection's transport, in one of two forms:

- ``per_frame``: one ``write`` per frame per connection (the floor is the kernel's ~2 µs per ``send``);
- ``coalesced``: the frames of one event-loop tick joined into one ``write`` per connection.

Paths: ``/`` subscribes; ``/pub`` is a publisher whose every frame is broadcast to the subscribers (latency runs,
coalesced per tick); ``/rpc`` answers each invocation with a result of the ``stream::set`` shape (the request/response
limit). On stdin ``go EVENTS PER_TICK MODE`` writes EVENTS frames, PER_TICK per tick, and prints ``sent``.

Settings: picows defaults (``read_buffer_init_size`` 16 KiB, no auto-ping), uvloop.

Usage: python -m bench.raw_server PORT
"""

from __future__ import annotations

import asyncio
import resource
import sys
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from bench.common import event_json, text_frame

__all__ = ["RawServer"]


class _Subscriber(WSListener):
    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport.underlying_transport
        self.server.subscribers.append(self.transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.transport in self.server.subscribers:
            self.server.subscribers.remove(self.transport)


class _Publisher(WSListener):
    def __init__(self, server: RawServer) -> None:
        self.server = server

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.server.publish(text_frame(frame.get_payload_as_bytes()))


class _Rpc(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        call: dict[str, Any] = orjson.loads(frame.get_payload_as_bytes())
        result = {"old_value": None, "new_value": call.get("data", {}).get("data")}
        reply = {"type": "invocationresult", "invocation_id": call.get("invocation_id"),
                 "function_id": call.get("function_id"), "result": result}
        transport.send(WSMsgType.TEXT, orjson.dumps(reply))


class RawServer:
    """Subscriber list plus the two write forms."""

    def __init__(self) -> None:
        self.subscribers: list[asyncio.Transport] = []
        self._queued: list[bytes] = []  # published frames waiting for the end of the tick

    def listener(self, request: WSUpgradeRequest) -> WSListener:
        path = request.path.decode() if isinstance(request.path, bytes) else request.path
        if path.startswith("/pub"):
            return _Publisher(self)
        if path.startswith("/rpc"):
            return _Rpc()
        return _Subscriber(self)

    def publish(self, frame: bytes) -> None:
        """Queue ``frame`` for every subscriber; all frames of this tick go out in one write each."""
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queued.append(frame)

    def _flush(self) -> None:
        chunk = b"".join(self._queued)
        self._queued = []
        for transport in self.subscribers:
            transport.write(chunk)

    async def burst(self, events: int, per_tick: int, mode: str) -> None:
        """Write ``events`` frames to every subscriber, ``per_tick`` per loop iteration."""
        frames = [text_frame(event_json(i)) for i in range(events)]  # encoded before the clock starts
        for start in range(0, events, per_tick):
            tick = frames[start : start + per_tick]
            if mode == "coalesced":
                chunk = b"".join(tick)
                for transport in self.subscribers:
                    transport.write(chunk)
            else:
                for frame in tick:
                    for transport in self.subscribers:
                        transport.write(frame)
            await asyncio.sleep(0)


def _raise_open_files_limit() -> None:
    """Soft open-files limit to the hard one, as ``streamhub serve`` does: every connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(port: int) -> None:
    _raise_open_files_limit()
    server = RawServer()
    listening = await ws_create_server(server.listener, "127.0.0.1", port, backlog=1024)
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = line.split()
        if command and command[0] == "go":
            await server.burst(int(command[1]), int(command[2]), command[3])
            print("sent", flush=True)
    listening.close()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1])))
