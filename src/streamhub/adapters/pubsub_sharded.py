"""Sharded pub/sub over a Redis Cluster: each watched group's channel is subscribed on the primary owning its slot.

Why it looks like this: a group's events are ``SPUBLISH``ed by its write script on the primary that owns the
group's slot, and only that node's ``SSUBSCRIBE``rs get them. So this keeps one ``pubsub.Subscriber`` (sharded
mode: reconnects, resubscribes and reports gaps by itself) per primary that holds watched channels, and moves a
channel when the slot map says its slot has a new owner (slot migrated, primary failed over to its replica). A
moved channel is reported as a gap once its new owner confirms it: events published meanwhile may be lost, and
the engine answers a gap with a fresh sync of the group's subscribers. A node that gives a slot away also
unsubscribes its channels by itself (``sunsubscribe``): that prompts a new reading of the slot map at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from streamhub.adapters.base import GapListener
from streamhub.adapters.pubsub import Decode, Subscriber
from streamhub.adapters.redis_pipe import RedisLink
from streamhub.adapters.redis_shards import Addr, ShardedPipe, SlotMap, key_slot
from streamhub.core.metrics import NULL_METRICS, Metrics

__all__ = ["ShardedSubscriber"]

log = logging.getLogger(__name__)


class ShardedSubscriber:
    """The ``pubsub.Subscriber`` interface over every primary of a cluster.

    Args:
        router: the adapter's ``ShardedPipe``: its slot map says where each channel lives, its pools connect.
        listener, on_gap, health_interval, timeout, metrics, decode: as ``pubsub.Subscriber``.
    """

    def __init__(self, router: ShardedPipe, listener: Callable[[Any], None], on_gap: GapListener | None, *,
                 health_interval: float, timeout: float, metrics: Metrics = NULL_METRICS,
                 decode: Decode | None = None) -> None:
        self._router = router
        self._listener = listener
        self._on_gap = on_gap
        self._health = health_interval
        self._timeout = timeout
        self._metrics = metrics
        self._decode = decode
        self._wanted: dict[bytes, tuple[str, str]] = {}  # channel -> (stream, group)
        self._home: dict[bytes, Addr] = {}  # channel -> the node it is subscribed on
        self._nodes: dict[Addr, Subscriber] = {}
        self._moving: set[asyncio.Task[None]] = set()
        router.on_change(self._follow)

    async def start(self) -> None:
        """Nothing to connect before a group is watched (the router has read the slot map already)."""

    async def close(self) -> None:
        """Drop every node's connection."""
        for task in list(self._moving):
            task.cancel()
        nodes, self._nodes = self._nodes, {}
        for node in nodes.values():
            await node.close()

    @property
    def connected(self) -> bool:
        """True while every node holding a watched channel is connected."""
        return all(node.connected for node in self._nodes.values() if node.channels)

    async def watch(self, channel: bytes, stream: str, group: str) -> None:
        """Subscribe on the owner of the channel's slot; returns once it confirmed (or its connection is down)."""
        self._wanted[channel] = (stream, group)
        addr = self._owner(channel)
        if addr is None:
            return  # no owner now: the next slot map places it (as a gap)
        self._home[channel] = addr
        node = self._node(addr)
        # a node's first connection: wait for it, so events written after watch() returns are never missed (if
        # it does not come up in time, the channel is subscribed when it does, and reported as a gap then)
        late = not node.connected and not await node.up(self._timeout)
        if self._home.get(channel) != addr:
            return  # the slot map moved the channel meanwhile: its move subscribes it on the new owner
        await node.watch(channel, stream, group, gap=late)

    async def unwatch(self, channel: bytes) -> None:
        """Stop delivering the channel's events."""
        self._wanted.pop(channel, None)
        addr = self._home.pop(channel, None)
        node = self._nodes.get(addr) if addr is not None else None
        if node is not None:
            await node.unwatch(channel)

    # Private

    def _owner(self, channel: bytes) -> Addr | None:
        slots = self._router.slot_map
        return slots.owner(key_slot(channel)) if slots is not None else None

    def _node(self, addr: Addr) -> Subscriber:
        node = self._nodes.get(addr)
        if node is None:
            extra: dict[str, Any] = {} if self._decode is None else {"decode": self._decode}
            node = self._nodes[addr] = Subscriber(
                lambda: RedisLink(self._router.pool(addr)), self._listener, self._on_gap,
                where=f"{addr[0]}:{addr[1]} ({self._router.where})", health_interval=self._health,
                timeout=self._timeout, metrics=self._metrics, sharded=True,
                on_lost=functools.partial(self._lost, addr), **extra)
            node.launch()
        return node

    def _lost(self, addr: Addr, channel: bytes) -> None:
        """A node unsubscribed a channel by itself: its slot moved; read the map now to find the new owner."""
        log.info("Redis Cluster node %s:%d gave up channel %r (slot moved)", *addr, channel)
        self._router.refresh_soon()

    def _follow(self, slots: SlotMap) -> None:
        """Move every channel whose slot has a new owner, then drop nodes that hold nothing and left the map."""
        for channel, (stream, group) in self._wanted.items():
            new = slots.owner(key_slot(channel))
            old = self._home.get(channel)
            if new is not None and new != old:
                self._home[channel] = new
                task = asyncio.create_task(self._move(channel, stream, group, old, new))
                self._moving.add(task)
                task.add_done_callback(self._moving.discard)
        for addr in [addr for addr, node in self._nodes.items()
                     if addr not in slots.primaries and not any(home == addr for home in self._home.values())]:
            task = asyncio.create_task(self._nodes.pop(addr).close())
            self._moving.add(task)
            task.add_done_callback(self._moving.discard)

    async def _move(self, channel: bytes, stream: str, group: str, old: Addr | None, new: Addr) -> None:
        if old is not None and old in self._nodes:
            await self._nodes[old].unwatch(channel)
        if self._home.get(channel) == new and channel in self._wanted:
            await self._node(new).watch(channel, stream, group, gap=True)
