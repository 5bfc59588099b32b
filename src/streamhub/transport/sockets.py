"""Small helpers shared by the WebSocket endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["socket_writer"]


def socket_writer(transport: asyncio.Transport) -> Callable[[bytes], None]:
    """``transport.write`` that drops data once the peer is gone (uvloop raises on a closed transport)."""

    def write(data: bytes) -> None:
        if not transport.is_closing():
            transport.write(data)

    return write
