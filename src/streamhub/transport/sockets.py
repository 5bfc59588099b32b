"""Small helpers shared by the WebSocket endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from streamhub.protocol import close_codes

__all__ = ["BackgroundTasks", "close_going_away", "socket_writer"]

CLOSE_TIMEOUT = 5.0  # seconds a peer gets to answer a close before the socket is dropped


async def close_going_away(ws: web.WebSocketResponse) -> None:
    """Close with 1001 (the engine is going away) so the peer reconnects at once instead of timing out."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=close_codes.GOING_AWAY, message=b"engine shutting down"), CLOSE_TIMEOUT)


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
