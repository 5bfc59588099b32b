"""The one pub/sub connection of an engine: SUBSCRIBE per watched group, reconnect, resubscribe, report gaps.

Why a dedicated class: the connection outlives Redis outages. It keeps the set of channels the engine wants;
after any break it reconnects by itself (backoff up to 1 s), subscribes every wanted channel again and, as each
SUBSCRIBE is confirmed, reports a gap for that group before delivering its next event (events published while
the connection was down are gone). A connection that stops answering PINGs is treated as broken.

The transport is a ``Link`` (one raw Redis connection) so this module knows no client library. Messages are
``StreamEvent`` JSON by default; ``decode`` turns another kind (presence changes) into what its listener takes.

``sharded=True`` speaks sharded pub/sub (``SSUBSCRIBE``, Redis 7) to one node of a Redis Cluster: one channel per
command (a command's channels must share a slot), and a ``sunsubscribe`` the engine did not ask for (the node gave
the channel's slot away) goes to ``on_lost`` so the caller can move the channel to its new owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from streamhub.adapters.base import EventListener, GapListener
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.model import StreamEvent
from streamhub.errors import AdapterError

__all__ = ["Decode", "Link", "Subscriber"]

log = logging.getLogger(__name__)

Decode = Callable[[str, str, bytes], Any]
"""(stream, group, message) -> what the listener gets; raises ValueError/KeyError/TypeError on garbage."""


def _event(stream: str, group: str, data: bytes) -> StreamEvent:
    return StreamEvent.from_wire(orjson.loads(data))


_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 1.0


class Link(Protocol):
    """One connection speaking RESP in subscribed mode."""

    async def open(self) -> None:
        """Connect (authenticating as configured)."""

    async def send(self, *args: bytes | str) -> None:
        """Write one command."""

    async def read(self, timeout: float) -> Any:
        """Return the next reply or push message, or None if nothing arrived within ``timeout`` seconds."""

    async def close(self) -> None:
        """Drop the connection."""


class Subscriber:
    """Delivers the events of watched groups to ``listener``, in channel order.

    Args:
        new_link: makes a fresh ``Link`` for each connection attempt.
        listener: gets every decoded event of a watched group.
        on_gap: gets ``(stream, group)`` when that group is subscribed again after a break.
        where: names the server in log lines and errors (no credentials).
        health_interval: idle seconds before a PING; no answer within as long again means a dead connection.
        timeout: seconds ``watch`` waits for a SUBSCRIBE to be confirmed (``start``: at least 5 s).
        metrics: told of each reconnection after a break.
        decode: turns a message of a watched channel into what ``listener`` takes (default: a ``StreamEvent``).
        sharded: speak sharded pub/sub to one cluster node (``SSUBSCRIBE``).
        on_lost: gets each channel the node unsubscribed by itself (sharded only: its slot moved away).
    """

    def __init__(self, new_link: Callable[[], Link], listener: EventListener | Callable[[Any], None],
                 on_gap: GapListener | None, *, where: str, health_interval: float, timeout: float,
                 metrics: Metrics = NULL_METRICS, decode: Decode = _event, sharded: bool = False,
                 on_lost: Callable[[bytes], None] | None = None) -> None:
        self._sharded = sharded
        self._subscribe, self._unsubscribe = (b"SSUBSCRIBE", b"SUNSUBSCRIBE") if sharded else (b"SUBSCRIBE",
                                                                                               b"UNSUBSCRIBE")
        self._kinds = (b"smessage", b"ssubscribe", b"sunsubscribe") if sharded else (b"message", b"subscribe",
                                                                                     b"unsubscribe")
        self._on_lost = on_lost
        self._new_link = new_link
        self._decode = decode
        self._metrics = metrics
        self._listener = listener
        self._on_gap = on_gap
        self._where = where
        self._health = health_interval
        self._timeout = timeout
        self._wanted: dict[bytes, tuple[str, str]] = {}  # channel -> (stream, group)
        self._waiters: dict[bytes, deque[asyncio.Future[bool]]] = {}  # SUBSCRIBEs awaiting confirmation
        self._gapped: set[bytes] = set()  # resubscribed channels whose gap is reported on confirmation
        self._owed: set[bytes] = set()  # channels moved here (watch(gap=True)): gap reported on confirmation
        self._link: Link | None = None  # set while connected
        self._up = asyncio.Event()
        self._connections = 0
        self._task: asyncio.Task[None] | None = None

    def launch(self) -> None:
        """Start connecting (and reconnecting) without waiting for the connection."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="streamhub-redis-subscriber")

    async def start(self) -> None:
        """Connect; raises ``AdapterError`` if Redis cannot be reached within the timeout."""
        self.launch()
        try:
            await asyncio.wait_for(self._up.wait(), max(self._timeout, 5.0))
        except TimeoutError:
            await self.close()
            raise AdapterError(f"Redis at {self._where}: pub/sub connection not established within "
                               f"{max(self._timeout, 5.0)}s", temporary=True) from None

    async def close(self) -> None:
        """Stop reconnecting and drop the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def connected(self) -> bool:
        """True while the pub/sub connection is up (readiness probe)."""
        return self._link is not None

    async def up(self, wait: float) -> bool:
        """Wait up to ``wait`` seconds for the connection; True once it is up."""
        try:
            await asyncio.wait_for(self._up.wait(), wait)
        except TimeoutError:
            return False
        return True

    @property
    def channels(self) -> list[bytes]:
        """The channels this subscriber keeps subscribed."""
        return list(self._wanted)

    async def watch(self, channel: bytes, stream: str, group: str, *, gap: bool = False) -> None:
        """Subscribe to a group's channel; returns once Redis confirmed (or the connection is down).

        When down, the channel is subscribed on reconnect and reported as a gap then, so the caller's snapshot
        is refreshed even if it was read in between. ``gap=True`` reports a gap on confirmation in any case (the
        channel moved here from another node, which may have dropped events meanwhile).
        """
        self._wanted[channel] = (stream, group)
        if gap:
            self._owed.add(channel)
        link = self._link
        if link is None:
            return
        confirmed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, deque()).append(confirmed)
        try:
            await link.send(self._subscribe, channel)
            await asyncio.wait_for(confirmed, self._timeout)
        except Exception as exc:  # the read loop notices a broken connection and resubscribes
            log.warning("SUBSCRIBE %r on Redis at %s not confirmed: %r", channel, self._where, exc)

    async def unwatch(self, channel: bytes) -> None:
        """Stop delivering a group's events and release its subscription."""
        self._wanted.pop(channel, None)
        self._gapped.discard(channel)
        self._owed.discard(channel)
        link = self._link
        if link is not None:
            try:
                await link.send(self._unsubscribe, channel)
            except Exception as exc:  # a broken connection holds no subscription worth releasing
                log.debug("UNSUBSCRIBE %r failed: %s", channel, exc)

    # Connection loop

    async def _run(self) -> None:
        delay = _MIN_BACKOFF
        while True:
            link = self._new_link()
            try:
                await link.open()
                await self._subscribe_all(link)
                delay = _MIN_BACKOFF
                await self._read(link)
            except Exception as exc:
                if self._link is not None or self._connections == 0:
                    log.warning("Redis pub/sub at %s unavailable (%s); reconnecting", self._where, exc)
            finally:
                self._disconnected()
                with contextlib.suppress(Exception):
                    await link.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _subscribe_all(self, link: Link) -> None:
        channels = list(self._wanted)
        if self._connections:
            self._gapped = set(channels)
            self._metrics.redis_reconnected()
            log.info("Redis pub/sub at %s reconnected; resubscribing %d groups", self._where, len(channels))
        self._connections += 1
        self._link = link  # from here on, watch() sends its own SUBSCRIBE
        self._up.set()
        if channels and self._sharded:
            for channel in channels:  # one per command: a command's shard channels must share a slot
                await link.send(self._subscribe, channel)
        elif channels:
            await link.send(self._subscribe, *channels)

    def _disconnected(self) -> None:
        self._link = None
        self._up.clear()
        self._gapped.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)
        self._waiters.clear()

    async def _read(self, link: Link) -> None:
        pinged = False
        while True:
            reply = await link.read(self._health)
            if reply is None:
                if pinged:
                    raise ConnectionError(f"no answer to PING within {self._health}s")
                await link.send("PING")
                pinged = True
                continue
            pinged = False
            self._handle(reply)

    # Messages

    def _handle(self, reply: Any) -> None:
        kind = reply[0]
        message, subscribed, unsubscribed = self._kinds
        if kind == message:
            self._deliver(reply[1], reply[2])
        elif kind == subscribed:
            self._confirmed(reply[1])
        elif kind == unsubscribed and self._on_lost is not None and reply[1] in self._wanted:
            self._on_lost(reply[1])  # not asked for: the node gave the channel's slot away

    def _confirmed(self, channel: bytes) -> None:
        waiters = self._waiters.get(channel)
        if waiters:
            waiter = waiters.popleft()
            if not waiters:
                del self._waiters[channel]
            if not waiter.done():
                waiter.set_result(True)
        if channel in self._gapped or channel in self._owed:
            self._gapped.discard(channel)
            self._owed.discard(channel)
            group = self._wanted.get(channel)
            if group is not None and self._on_gap is not None:
                try:
                    self._on_gap(*group)
                except Exception:
                    log.exception("gap listener failed on %s/%s", *group)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        group = self._wanted.get(channel)
        if group is None:
            return  # a late message of a group just unwatched
        try:
            event = self._decode(*group, data)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping an undecodable message on Redis channel %r: %s", channel, exc)
            return
        try:
            self._listener(event)
        except Exception:
            log.exception("listener failed on %s/%s", *group)
