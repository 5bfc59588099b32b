"""The one JSON codec, and server-side WebSocket framing of pre-encoded payloads.

Fan-out encodes an event once (``encode``), wraps it once in a WebSocket frame (``text_frame``) and hands the same
``bytes`` object to every subscriber; per-subscriber work is then a list append.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["decode", "encode", "text_frame"]

_OPCODE_TEXT_FIN = 0x81


def encode(value: Any) -> bytes:
    """Serialize ``value`` to compact JSON bytes."""
    return orjson.dumps(value)


def decode(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text; raises ``orjson.JSONDecodeError`` (a ``ValueError``) on bad input."""
    return orjson.loads(data)


def text_frame(payload: bytes) -> bytes:
    """Return one complete, unmasked, uncompressed WebSocket text frame carrying ``payload``.

    Server-to-client frames are never masked (RFC 6455 §5.1), so the bytes are the same for every receiver.
    """
    size = len(payload)
    if size < 126:
        header = bytes((_OPCODE_TEXT_FIN, size))
    elif size < 65536:
        header = bytes((_OPCODE_TEXT_FIN, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((_OPCODE_TEXT_FIN, 127)) + size.to_bytes(8, "big")
    return header + payload
