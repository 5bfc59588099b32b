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
* Commands fail fast (no client retries, short timeouts) with ``AdapterError``, like the stream adapter's.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from streamhub.adapters.cluster import CALL, NOTICE, BusListener, ClusterBus, ClusterView
from streamhub.adapters.keys import RedisKeys, decode_name
from streamhub.adapters.pubsub import Subscriber
from streamhub.adapters.redis import _redact
from streamhub.adapters.redis_pipe import RedisLink, connection_pool, redis_call
from streamhub.errors import AdapterError

__all__ = ["RedisClusterBus"]

_CLAIMS_PER_RENEWAL = 16  # dead engines one renewal claims at most (the rest at the next one)


def _script(name: str) -> str:
    lua = importlib.resources.files("streamhub.adapters").joinpath("lua")
    return "".join(lua.joinpath(part).read_text("utf-8") for part in ("lease.lua", name))


class RedisClusterBus:
    """One engine's link to the other engines of its deployment.

    Args:
        url, key_prefix: as for ``RedisAdapter`` (engines with the same ones form one system).
        timeout: seconds a command may take.
    """

    def __init__(self, url: str, key_prefix: str = "streamhub:", *, timeout: float = 2.0,
                 connect_timeout: float = 1.0) -> None:
        self.where = _redact(url)
        self.engine_id = uuid.uuid4().hex
        self.keys = RedisKeys(key_prefix)
        self._timeout = timeout
        self._pool = connection_pool(url, self.where, max_connections=32, timeout=timeout,
                                     connect_timeout=connect_timeout)
        self._redis = aioredis.Redis(connection_pool=self._pool, retry=Retry(NoBackoff(), 0))
        self._renew = self._redis.register_script(_script("cluster_renew.lua"))
        self._announce = self._redis.register_script(_script("cluster_announce.lua"))
        self._own = self.keys.cluster_channel(self.engine_id)
        self._subscriber: Subscriber | None = None

    async def start(self, listener: BusListener, on_gap: Callable[[], None]) -> None:
        def deliver(message: tuple[str, bytes]) -> None:
            listener(*message)

        self._subscriber = Subscriber(lambda: RedisLink(self._pool), deliver, lambda _kind, _: on_gap(),
                                      where=self.where, health_interval=1.0, timeout=self._timeout,
                                      decode=lambda kind, _, data: (kind, data))
        await self._subscriber.start()
        await self._subscriber.watch(self._own, CALL, "")
        await self._subscriber.watch(self.keys.cluster_notices, NOTICE, "")

    async def close(self) -> None:
        with contextlib.suppress(AdapterError):  # expire now: the next renewal of a peer claims this engine
            await self._call("giving up the cluster lease",
                             self._redis.zadd(self.keys.cluster_engines, {self.engine_id: 0}))
        if self._subscriber is not None:
            await self._subscriber.close()
            self._subscriber = None
        await self._redis.aclose()
        await self._pool.disconnect()

    async def renew(self, lease_ms: int) -> ClusterView:
        found: list[Any] = await self._call("renewing the cluster lease", self._renew(
            keys=[self.keys.cluster_engines, self.keys.cluster_guards],
            args=[self.engine_id, lease_ms, self.keys.prefix, _CLAIMS_PER_RENEWAL]))
        peers, orphans = found[2], found[3]
        return ClusterView(bool(found[0]), int(found[1]),
                           {decode_name(peers[i]): peers[i + 1] for i in range(0, len(peers), 2)},
                           {decode_name(orphans[i]): orphans[i + 1] for i in range(0, len(orphans), 2)})

    async def announce(self, announcement: bytes, dropped_guards: list[str]) -> None:
        await self._call("announcing this engine's functions and triggers", self._announce(
            keys=[self.keys.cluster_announcement(self.engine_id), self.keys.cluster_guards],
            args=[announcement, self.keys.cluster_notices, self.engine_id, *dropped_guards]))

    async def send(self, engine_id: str, message: bytes) -> bool:
        receivers: int = await self._call(f"sending a message to engine {engine_id}",
                                          self._redis.publish(self.keys.cluster_channel(engine_id), message))
        return receivers > 0

    async def _call(self, what: str, command: Awaitable[Any]) -> Any:
        return await redis_call(self.where, what, command)


_check: type[ClusterBus] = RedisClusterBus
