"""The cluster bus of Redis deployments: engine leases, announcements, and per-engine channels for routed calls.

Why it looks like this (keys in ``keys.py``, scripts in ``lua/cluster_*.lua``):

* Leases are presence's mechanism (``lua/lease.lua``, shared with ``redis_presence.py``): one sorted set, engine
  id -> expiry on the Redis clock (engines' clocks do not matter); each renewal also claims engines whose lease
  ran out, atomically, so one claimer moves a dead engine's join guards to the orphaned guards hash. The set is
  the cluster's own (``cluster:engines``) because its lease is shorter than presence's (5 s against 15 s).
  Nothing scans the keyspace: the live engines are the sorted set's members, their announcements one key each.
* A renewal returns every live engine's announcement in the same round trip, so an engine's view of the
  namespace is never older than one renewal even if a notice was lost.
* Each engine SUBSCRIBEs to its own channel (routed calls to it, answers to its calls) and to the notices
  channel. ``PUBLISH`` answers how many connections got the message: 0 means the engine is gone, so a call to
  it fails at once instead of waiting for its timeout.
* Commands fail fast (no client retries, short timeouts) with ``AdapterError``, like the stream adapter's. They
  go through the stream adapter's pipe when the registry hands it over (one connection per node for everything),
  else a pipe of its own (``redis_pipe.Pipe``, or ``redis_shards.ShardedPipe`` on a cluster).
* On a Redis Cluster (``redis+cluster://``) every key and channel of the bus carries the ``{engines}`` hash tag
  (``keys.py``), so each script stays in one slot (Redis checks it: ``redis_shards.lua_script``), and
  messages go out by ``SPUBLISH`` on sharded pub/sub, read by ``pubsub_sharded.ShardedSubscriber``. That keeps
  the receiver count right: a classic ``PUBLISH`` on a cluster counts only the subscribers of the node it ran
  on, ``SPUBLISH`` those of the channel's shard, where every engine subscribes its channel.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from streamhub.adapters.cluster import CALL, NOTICE, BusListener, ClusterBus, ClusterView
from streamhub.adapters.keys import RedisKeys, decode_name
from streamhub.adapters.pubsub import Subscriber
from streamhub.adapters.pubsub_sharded import ShardedSubscriber
from streamhub.adapters.redis import _redact
from streamhub.adapters.redis_pipe import Pipe, RedisLink, close_links, connection_pool, open_streams, redis_call
from streamhub.adapters.redis_shards import ShardedPipe, is_cluster_url, lua_script
from streamhub.errors import AdapterError

__all__ = ["RedisClusterBus"]

_CLAIMS_PER_RENEWAL = 16  # dead engines one renewal claims at most (the rest at the next one)


def _script(name: str, *, cluster: bool) -> str:
    """A bus script after its prelude; on a cluster, in its slot only and publishing sharded (``lua_script``)."""
    return lua_script("lease.lua", name, cluster=cluster)


class RedisClusterBus:
    """One engine's link to the other engines of its deployment.

    Args:
        url, key_prefix: as for ``RedisAdapter`` (engines with the same ones form one system).
        timeout: seconds a command may take.
        pipe: the ``RedisAdapter``'s pipe to share (its owner starts and closes it); None: one of its own.
    """

    def __init__(self, url: str, key_prefix: str = "streamhub:", *, timeout: float = 2.0,
                 connect_timeout: float = 1.0, pipe: Pipe | ShardedPipe | None = None) -> None:
        self.where = _redact(url)
        self.engine_id = uuid.uuid4().hex
        self.cluster = is_cluster_url(url)
        self.keys = RedisKeys(key_prefix, cluster=self.cluster)
        self._timeout = timeout
        self._pool = None if self.cluster else connection_pool(url, self.where, max_connections=32,
                                                                timeout=timeout, connect_timeout=connect_timeout)
        self._own_pipe = pipe is None
        self._pipe: Pipe | ShardedPipe
        if pipe is not None:
            self._pipe = pipe
        elif self._pool is not None:
            self._pipe = Pipe(functools.partial(open_streams, self._pool), timeout)
        else:
            self._pipe = ShardedPipe(url, self.where, timeout=timeout, connect_timeout=connect_timeout)
        self._renew = self._pipe.script(_script("cluster_renew.lua", cluster=self.cluster))
        self._announce = self._pipe.script(_script("cluster_announce.lua", cluster=self.cluster))
        self._publish = b"SPUBLISH" if self.cluster else b"PUBLISH"
        self._own = self.keys.cluster_channel(self.engine_id)
        self._subscriber: Subscriber | ShardedSubscriber | None = None

    async def start(self, listener: BusListener, on_gap: Callable[[], None]) -> None:
        def deliver(message: tuple[str, bytes]) -> None:
            listener(*message)

        def decode(kind: str, _: str, data: bytes) -> tuple[str, bytes]:
            return kind, data

        if isinstance(self._pipe, ShardedPipe):
            if self._own_pipe:
                await self._call("reading the cluster's slot map", self._pipe.start())
            self._subscriber = ShardedSubscriber(self._pipe, deliver, lambda _kind, _: on_gap(), health_interval=1.0,
                                                 timeout=self._timeout, decode=decode)
        else:
            pool = self._pool
            assert pool is not None  # a single server's bus has its pool even on a shared pipe
            self._subscriber = Subscriber(lambda: RedisLink(pool), deliver, lambda _kind, _: on_gap(),
                                          where=self.where, health_interval=1.0, timeout=self._timeout, decode=decode)
        await self._subscriber.start()
        await self._subscriber.watch(self._own, CALL, "")
        await self._subscriber.watch(self.keys.cluster_notices, NOTICE, "")
        if not self._subscriber.connected:
            raise AdapterError(f"Redis at {self.where}: the cluster bus could not subscribe its channels",
                               temporary=True)

    async def close(self) -> None:
        with contextlib.suppress(AdapterError):  # expire now: the next renewal of a peer claims this engine
            await self._call("giving up the cluster lease",
                             self._pipe.call(b"ZADD", self.keys.cluster_engines, 0, self.engine_id))
        subscriber, self._subscriber = self._subscriber, None
        await close_links(subscriber, self._pipe if self._own_pipe else None, self._pool)

    async def renew(self, lease_ms: int) -> ClusterView:
        found: list[Any] = await self._call("renewing the cluster lease", self._pipe.run(
            self._renew, [self.keys.cluster_engines, self.keys.cluster_guards],
            [self.engine_id, lease_ms, self.keys.engines_prefix, _CLAIMS_PER_RENEWAL]))
        peers, orphans = found[2], found[3]
        return ClusterView(bool(found[0]), int(found[1]),
                           {decode_name(peers[i]): peers[i + 1] for i in range(0, len(peers), 2)},
                           {decode_name(orphans[i]): orphans[i + 1] for i in range(0, len(orphans), 2)})

    async def announce(self, announcement: bytes, dropped_guards: list[str]) -> None:
        await self._call("announcing this engine's functions and triggers", self._pipe.run(
            self._announce, [self.keys.cluster_announcement(self.engine_id), self.keys.cluster_guards],
            [announcement, self.keys.cluster_notices, self.engine_id, *dropped_guards]))

    async def send(self, engine_id: str, message: bytes) -> bool:
        receivers: int = await self._call(f"sending a message to engine {engine_id}",
                                          self._pipe.call(self._publish, self.keys.cluster_channel(engine_id), message))
        return receivers > 0

    async def _call(self, what: str, command: Awaitable[Any]) -> Any:
        return await redis_call(self.where, what, command)


_check: type[ClusterBus] = RedisClusterBus
