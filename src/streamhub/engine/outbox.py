"""The bounded outbound queue of one connection, with one socket write per event-loop tick.

Frames put during one tick are joined and handed to the transport in a single ``write`` (the biggest lever on
fan-out CPU: one syscall per connection per tick instead of one per frame). The bytes a connection has not yet
taken off the kernel are bounded: past ``max_pending_bytes`` the outbox closes and calls ``on_overflow`` so the
transport cuts the slow client off, instead of buffering without limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Outbox"]


class Outbox:
    """Per-connection frame queue.

    Args:
        write: hands bytes to the transport (never blocks).
        buffered: bytes the transport holds that the peer has not read yet.
        on_overflow: called once when the peer cannot keep up; the outbox is closed by then.
        max_pending_bytes: the bound on queued plus transport-buffered bytes.
    """

    __slots__ = ("_buffered", "_flush_scheduled", "_frames", "_loop", "_max", "_on_overflow", "_pending",
                 "_write", "closed")

    def __init__(
        self,
        write: Callable[[bytes], None],
        buffered: Callable[[], int],
        on_overflow: Callable[[], None],
        max_pending_bytes: int,
    ) -> None:
        self._write = write
        self._buffered = buffered
        self._on_overflow = on_overflow
        self._max = max_pending_bytes
        self._frames: list[bytes] = []
        self._pending = 0  # bytes in self._frames
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.closed = False

    def put(self, frame: bytes) -> None:
        """Queue one pre-encoded frame; it is written at the end of the current tick."""
        if self.closed:
            return
        self._frames.append(frame)
        self._pending += len(frame)
        if self._pending > self._max:
            self._overflow()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every queued frame now, in one call."""
        self._flush_scheduled = False
        if self.closed or not self._frames:
            return
        frames = self._frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self._frames = []
        self._pending = 0
        self._write(data)
        if self._buffered() > self._max:
            self._overflow()

    def close(self) -> None:
        """Drop what is queued and accept nothing more."""
        self.closed = True
        self._frames = []
        self._pending = 0

    def _overflow(self) -> None:
        self.close()
        self._on_overflow()
