"""Small helpers shared by the WebSocket endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from streamhub.protocol import close_codes

__all__ = ["BackgroundTasks", "close_going_away", "release", "socket_writer"]

CLOSE_TIMEOUT = 5.0  # seconds a peer gets to answer a close before the socket is dropped


async def close_going_away(ws: web.WebSocketResponse) -> None:
    """Close with 1001 (the engine is going away) so the peer reconnects at once instead of timing out."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=close_codes.GOING_AWAY, message=b"engine shutting down"), CLOSE_TIMEOUT)


def release(ws: web.WebSocketResponse, request: web.Request) -> None:
    """Break the reference cycles aiohttp leaves behind a finished WebSocket, so reference counting frees it.

    Left alone, each closed connection stays as ~45 objects of cyclic garbage (its request, protocol, reader,
    writer) until a full collection, and a heap frozen by ``streamhub.heap`` would never free them. Two cycles
    (aiohttp 3.14): the close error ``ws.exception()`` (and the ``EofStream`` it chains) keeps the traceback of
    ``ws.close`` whose frame holds ``ws``; with server pings on, the protocol's data callback is a bound method of
    ``ws``, which holds the request, which holds the protocol. Call once the read loop is over.
    """
    exc = ws.exception()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
    protocol = request.protocol
    if protocol is not None:
        protocol._data_received_cb = None


class BackgroundTasks:
    """Keeps a reference to each fire-and-forget task until it ends: the loop holds tasks only weakly, so an
    unreferenced one may be collected mid-flight (ruff RUF006)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def socket_writer(transport: asyncio.Transport) -> Callable[[bytes], None]:
    """``transport.write`` that drops data once the peer is gone (uvloop raises on a closed transport)."""

    def write(data: bytes) -> None:
        if not transport.is_closing():
            transport.write(data)

    return write
