"""The bounded outbound queue of one connection, with one socket write per event-loop tick.

Frames put during one tick are joined and handed to the transport in a single ``write`` (the biggest lever on
fan-out CPU: one syscall per connection per tick instead of one per frame). Every outbox of a loop that got frames
in a tick is flushed from one shared loop callback, not one callback each: at 1,000 subscribers a ``call_soon`` per
connection cost as much as a third of the write itself. Outboxes marked ``urgent`` (callers blocked on a reply) are
flushed before the others, so a worker's result does not wait behind a fan-out of the event it caused.

What a connection may hold unsent is bounded by ``max_pending_bytes``. The outbox closes and calls ``on_overflow``
(the transport then cuts the slow client off instead of buffering without limit) when more than that is queued
within one tick, when four times that is unsent in the transport, or when more than that is still unsent one
``grace`` period after it went over. The grace lets a healthy client take a burst (a large snapshot) that
momentarily exceeds the bound. Code that sends a lot at once (a replay) awaits ``drain``.
"""


from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

__all__ = ["Outbox"]

log = logging.getLogger(__name__)

_DRAIN_POLL = 0.005  # seconds between checks while a large send waits for the client to read
_HARD_FACTOR = 4  # a backlog this many times the bound is cut off at once, grace or not


class _TickFlush:
    """The outboxes of one event loop that have frames waiting, flushed together at the end of the tick."""

    __slots__ = ("_dirty", "_loop", "_scheduled", "_urgent")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._urgent: list[Outbox] = []
        self._dirty: list[Outbox] = []
        self._scheduled = False

    def add(self, outbox: Outbox, urgent: bool) -> None:
        (self._urgent if urgent else self._dirty).append(outbox)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        urgent, dirty = self._urgent, self._dirty
        self._urgent, self._dirty = [], []
        self._scheduled = False
        for outbox in (*urgent, *dirty):
            try:
                outbox.flush()
            except Exception:  # one broken transport must not starve the other connections
                log.exception("flushing an outbox failed")


_flushes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _TickFlush] = weakref.WeakKeyDictionary()


def _tick_flush(loop: asyncio.AbstractEventLoop) -> _TickFlush:
    flush = _flushes.get(loop)
    if flush is None:
        flush = _flushes[loop] = _TickFlush(loop)
    return flush


class Outbox:
    """Per-connection frame queue.

    Args:
        write: hands bytes to the transport (never blocks).
        buffered: bytes the transport holds that the peer has not read yet.
        on_overflow: called once when the peer cannot keep up; the outbox is closed by then.
        max_pending_bytes: the bound on queued plus transport-buffered bytes.
        grace: seconds the transport may stay over the bound before the client is cut off.
        urgent: flush this outbox ahead of the others of the same tick (connections waiting on replies).
    """

    __slots__ = ("_buffered", "_check_scheduled", "_flush_scheduled", "_frames", "_grace", "_loop", "_max",
                 "_on_overflow", "_pending", "_tick", "_urgent", "_write", "closed", "max_pending_bytes")

    def __init__(
        self,
        write: Callable[[bytes], None],
        buffered: Callable[[], int],
        on_overflow: Callable[[], None],
        max_pending_bytes: int,
        grace: float = 1.0,
        urgent: bool = False,
    ) -> None:
        self._write = write
        self._buffered = buffered
        self._on_overflow = on_overflow
        self._max = max_pending_bytes
        self.max_pending_bytes = max_pending_bytes
        self._grace = grace
        self._frames: list[bytes] = []
        self._pending = 0  # bytes in self._frames
        self._flush_scheduled = False
        self._check_scheduled = False
        self._loop = asyncio.get_running_loop()
        self._tick = _tick_flush(self._loop)
        self._urgent = urgent
        self.closed = False

    def put(self, frame: bytes) -> None:
        """Queue one pre-encoded frame; it is written at the end of the current tick."""
        if self.closed:
            return
        self._frames.append(frame)
        self._pending += len(frame)
        if self._pending > self._max and len(self._frames) > 1:
            self._overflow()  # one frame may be large (a snapshot); a pile of them in one tick may not
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._tick.add(self, self._urgent)

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
        backlog = self._buffered()
        if backlog <= self._max:
            return
        if backlog - len(data) > _HARD_FACTOR * self._max:
            self._overflow()  # far over the bound even before this write: no grace
        elif not self._check_scheduled:
            self._check_scheduled = True
            self._loop.call_later(self._grace, self._check)

    async def drain(self) -> None:
        """Wait until the client has read enough that half the bound is free (or the outbox closed)."""
        # Polled: the transport's buffer has no awaitable (aiohttp owns the protocol's resume_writing callback).
        while not self.closed and self._pending + self._buffered() > self._max // 2:  # noqa: ASYNC110
            await asyncio.sleep(_DRAIN_POLL)

    @property
    def backlog(self) -> int:
        """Bytes queued here plus those the transport holds unsent (read when metrics are scraped)."""
        return 0 if self.closed else self._pending + self._buffered()

    def cut_off(self) -> None:
        """Give up on this client now (it cannot keep up): close and notify the transport."""
        if not self.closed:
            self._overflow()

    def close(self) -> None:
        """Drop what is queued and accept nothing more."""
        self.closed = True
        self._frames = []
        self._pending = 0

    def _check(self) -> None:
        self._check_scheduled = False
        if not self.closed and self._buffered() > self._max:
            self._overflow()

    def _overflow(self) -> None:
        self.close()
        self._on_overflow()
