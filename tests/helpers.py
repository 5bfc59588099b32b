"""Small real-socket clients for tests: a worker that speaks the worker protocol and a stream subscriber."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

TIMEOUT_FACTOR = float(os.environ.get("STREAMHUB_TESTS_TIMEOUT_FACTOR", "1"))


def timeout(seconds: float) -> float:
    """Scale a test timeout for slow machines."""
    return seconds * TIMEOUT_FACTOR


async def wait_until(condition: Callable[[], object], seconds: float = 10.0, poll: float = 0.01) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` after ``seconds`` (scaled).

    Only for state that offers nothing to await (another process, a library's internals).
    """
    async with asyncio.timeout(timeout(seconds)):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(poll)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CallFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")


Handler = Callable[[Any], Awaitable[Any]]


class TestWorker:
    """A worker over a real WebSocket: calls functions and serves its own."""

    __test__ = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.worker_id: str | None = None
        self.handlers: dict[str, Handler] = {}
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.other: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TestWorker:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0)
        first = orjson.loads((await self.ws.receive()).data)
        assert first["type"] == "workerregistered"
        self.worker_id = first["worker_id"]
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self.session is not None:
            await self.session.close()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(orjson.dumps(message))

    async def call(self, function_id: str, data: Any = None, wait: float = 10.0) -> Any:
        invocation_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[invocation_id] = future
        await self.send({"type": "invokefunction", "invocation_id": invocation_id,
                         "function_id": function_id, "data": data})
        return await asyncio.wait_for(future, timeout(wait))

    async def register(self, function_id: str, handler: Handler) -> None:
        self.handlers[function_id] = handler
        await self.send({"type": "registerfunction", "id": function_id})

    async def trigger(self, trigger_type: str, function_id: str, config: Any) -> str:
        trigger_id = str(uuid.uuid4())
        await self.send({"type": "registertrigger", "id": trigger_id, "trigger_type": trigger_type,
                         "function_id": function_id, "config": config})
        return trigger_id

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                continue
            data = orjson.loads(message.data)
            kind = data.get("type")
            if kind == "invocationresult" and data["invocation_id"] in self.pending:
                future = self.pending.pop(data["invocation_id"], None)
                if future is not None and not future.done():
                    if data.get("error") is not None:
                        future.set_exception(CallFailed(data["error"]))
                    else:
                        future.set_result(data.get("result", "<no result>"))
            elif kind == "invokefunction" and data["function_id"] in self.handlers:
                task = asyncio.create_task(self._serve(data))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)
            else:
                await self.other.put(data)

    async def _serve(self, data: dict[str, Any]) -> None:
        try:
            result = await self.handlers[data["function_id"]](data.get("data"))
            reply: dict[str, Any] = {"type": "invocationresult", "invocation_id": data["invocation_id"],
                                     "function_id": data["function_id"], "result": result}
        except Exception as exc:
            reply = {"type": "invocationresult", "invocation_id": data["invocation_id"],
                     "function_id": data["function_id"], "error": {"code": "handler_error", "message": str(exc)}}
        if data.get("invocation_id"):
            await self.send(reply)


class Subscriber:
    """A client of the stream port that collects every frame it receives."""

    def __init__(self, url: str, **connect: Any) -> None:
        self.url = url
        self.connect = connect
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, **self.connect)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self.session is not None:
            await self.session.close()

    async def join(self, stream: str, group: str, item: str | None = None, sub_id: str | None = None,
                   position: dict[str, Any] | None = None, presence: bool = False) -> str:
        sub_id = sub_id or str(uuid.uuid4())
        data: dict[str, Any] = {"subscriptionId": sub_id, "streamName": stream, "groupId": group}
        if item is not None:
            data["id"] = item
        if position is not None:
            data["position"] = position
        if presence:
            data["presence"] = True
        await self.send({"type": "join", "data": data})
        return sub_id

    async def leave(self, stream: str, group: str, sub_id: str) -> None:
        await self.send({"type": "leave", "data": {"subscriptionId": sub_id, "streamName": stream,
                                                   "groupId": group}})

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(orjson.dumps(message).decode())

    async def next(self, wait: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), timeout(wait))

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await self.frames.put(orjson.loads(message.data))
        self.closed.set()

    async def wait_closed(self, wait: float = 5.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout(wait))
        assert self.ws is not None
        return self.ws.close_code


class RawClient:
    """A WebSocket client on a plain socket with a tiny receive buffer: it reads only when told to.

    Used to play a client that stops reading, which a library client hides behind its own buffering.
    """

    def __init__(self, port: int, path: str = "/") -> None:
        self.port = port
        self.path = path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.frames: list[dict[str, Any]] = []

    async def connect(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=2**16)
        self.writer.write((f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], head

    def send_text(self, text: str) -> None:
        payload = text.encode()
        assert len(payload) < 126 and self.writer is not None
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)

    async def read_until_close(self, wait: float, keep: bool = False) -> tuple[int, int | None]:
        """Read frames until a close frame or EOF; returns (text frames read, close code or None).

        With ``keep``, decoded text frames are appended to ``self.frames``.
        """
        assert self.reader is not None
        frames = 0
        try:
            while True:
                head = await asyncio.wait_for(self.reader.readexactly(2), timeout(wait))
                size = head[1] & 0x7F
                if size == 126:
                    size = int.from_bytes(await self.reader.readexactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(await self.reader.readexactly(8), "big")
                body = await self.reader.readexactly(size)
                if head[0] & 0x0F == 0x8:
                    return frames, int.from_bytes(body[:2], "big") if len(body) >= 2 else None
                frames += 1
                if keep:
                    self.frames.append(orjson.loads(body))
        except asyncio.IncompleteReadError:
            return frames, None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
