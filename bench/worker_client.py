"""A lean worker-protocol client on picows, for driving calls at the engine (and the raw RPC baseline).

It only invokes functions: one ``invokefunction`` frame out, one ``invocationresult`` frame back, matched by
``invocation_id``. picows keeps the client's cost per call to a few microseconds, well under the server's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

__all__ = ["CallError", "WorkerClient", "connect"]


class CallError(Exception):
    """A call came back with an error (the message has the function id and the error body)."""


class WorkerClient(WSListener):
    """One connection; any number of calls in flight."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._next = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        message = orjson.loads(frame.get_payload_as_bytes())
        kind = message.get("type")
        if kind == "workerregistered" and not self.ready.done():
            self.ready.set_result(None)
        elif kind == "invocationresult":
            future = self._pending.pop(message.get("invocation_id"), None)
            if future is not None and not future.done():
                future.set_result(message)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        error = ConnectionError("worker connection closed")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def invoke(self, function_id: str, data: Any) -> asyncio.Future[Any]:
        """Send one call now; the future resolves with the whole ``invocationresult`` message."""
        assert self.transport is not None
        self._next += 1
        invocation_id = str(self._next)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = future
        frame = {"type": "invokefunction", "invocation_id": invocation_id, "function_id": function_id, "data": data}
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))
        return future

    async def call(self, function_id: str, data: Any, timeout: float = 30.0) -> Any:
        """Invoke and wait; returns the result, raises ``CallError`` for an error reply."""
        reply = await asyncio.wait_for(self.invoke(function_id, data), timeout)
        if reply.get("error") is not None:
            raise CallError(f"{function_id}: {reply['error']}")
        return reply.get("result")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.disconnect()


async def connect(port: int, path: str = "/", registered: bool = True, timeout: float = 10.0) -> WorkerClient:
    """Open a connection; with ``registered`` wait for the engine's ``workerregistered`` greeting."""
    _, client = await ws_connect(WorkerClient, f"ws://127.0.0.1:{port}{path}", websocket_handshake_timeout=timeout)
    assert isinstance(client, WorkerClient)
    if registered:
        await asyncio.wait_for(client.ready, timeout)
    return client


async def paced(count: int, rate: float, send: Any) -> list[float]:
    """Call ``send(k)`` for k in 0..count-1 at ``rate`` per second; returns each call's wall-clock send time."""
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    start = loop.time() + 0.05
    for k in range(count):
        delay = start + k / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.append(time.time())
        send(k)
    return sent
