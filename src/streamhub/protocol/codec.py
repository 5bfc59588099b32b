"""The one JSON codec, and server-side WebSocket framing of pre-encoded payloads.

Fan-out encodes an event once (``encode``), wraps it once in a WebSocket frame (``text_frame``) and hands the same
``bytes`` object to every subscriber; per-subscriber work is then a list append.

``depth_over`` bounds a frame before it is decoded: the decoders recurse once per level, so a frame nested a
thousand deep would otherwise end in ``RecursionError`` (whose depth depends on the caller's stack), and values
deeper than orjson can re-encode (255 levels) would get past the edge.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import orjson

__all__ = ["MAX_FRAME_DEPTH", "decode", "depth_over", "encode", "shorten", "text_frame"]

_OPCODE_TEXT_FIN = 0x81

MAX_FRAME_DEPTH = 250
"""Deepest nesting a received frame may have: above the deepest value a store accepts (config ``max_value_depth``,
at most 200) plus its message wrapper, below what orjson encodes (255) and far below the recursion limit."""

# A JSON string, or the rest of the frame after an unterminated quote. Possessive, so the scan stays linear.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


def encode(value: Any) -> bytes:
    """Serialize ``value`` to compact JSON bytes."""
    return orjson.dumps(value)


def decode(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text; raises ``orjson.JSONDecodeError`` (a ``ValueError``) on bad input."""
    return orjson.loads(data)


def depth_over(frame: bytes | bytearray | memoryview | str, limit: int = MAX_FRAME_DEPTH) -> int | None:
    """How deep ``frame``'s arrays and objects nest if that is more than ``limit``, else None.

    Brackets inside strings do not count. Exact for JSON; for text that is not JSON it is an estimate, and the
    decoder's own error is the better answer. Cheap: a frame with at most ``limit`` opening brackets is settled
    by two ``count`` calls, any other in a few linear passes at C speed.
    """
    data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else bytes(frame)
    if data.count(b"[") + data.count(b"{") <= limit:
        return None
    steps = _STRING.sub(b"", data).translate(_BRACKET_STEP, _NOT_BRACKET)
    depth = max(accumulate(memoryview(steps).cast("b")), default=0)
    return depth if depth > limit else None


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut in the middle to at most about ``limit`` characters.

    Decoder errors quote the offending value (``Invalid value 'xxx...' - at `$.type```); a peer must not be able to
    make an error frame or a log line as large as its own frame. Both ends stay, so the path is kept.
    """
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}...({len(text) - 2 * half} characters)...{text[-half:]}"


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
