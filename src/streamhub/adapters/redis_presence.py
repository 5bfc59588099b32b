"""Presence shared by every engine on one Redis (the ``PresenceStore`` of ``RedisAdapter`` deployments).

Why it looks like this (layout in ``keys.py``, scripts in ``lua/presence*.lua``):

* Members live in one hash per group; every change is numbered (``seq``) and published on the group's presence
  channel by the same script that applies it, so every engine sees a group's joins and leaves in order and can
  tell which ones a ``members`` read (hash + seq in one script) already covers.
* Each engine has an id and a lease in one sorted set (id -> expiry on the Redis clock, so engines' clocks do
  not matter; ``lua/lease.lua``, shared with the cluster's leases), and lists its members in a hash of its own.
  Every quarter of ``ttl`` it renews its lease and claims engines whose lease ran out (``presence_renew.lua``,
  atomic: one claimer), removing their members with ``leave`` events. A lease runs 3/4 of ``ttl`` after a
  renewal, so a killed engine's members are gone within ``ttl``, and a renewal may be up to ``ttl/2`` late
  before an engine is wrongly claimed. No keyspace scan.
* The engine keeps its own members in memory as the truth. If its lease was gone at a renewal (Redis restarted
  or lost data, or a survivor claimed it while it was cut off) or a write failed, it rewrites its members
  (``presence_reconcile.lua``: missing ones join again, stale ones leave). Changes published while the pub/sub
  connection was down are reported as gaps (``pubsub.Subscriber``), and the engine re-reads the members.
* Changes of a group reach an engine only while it ``watch``es the group (it has presence subscribers there).
* Commands go through a ``redis_pipe.Pipe``: the adapter's own when the registry hands it over (``pipe=``), so the
  presence writes of one loop tick leave in one write with each other and with the store's commands (a storm of
  joins costs one round trip per tick, not one per join); else a pipe of its own. Scripts run by EVALSHA (EVAL if
  the connection was opened before they were registered, or Redis lost them).

On a Redis Cluster (``redis+cluster://``) a group's keys and the engines' keys live in different slots, so no
script may touch both: ``redis_presence_cluster.ClusterPresence`` splits each change into ordered steps instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable
from typing import Any

import orjson
import redis.asyncio as aioredis

from streamhub.adapters.keys import RedisKeys, encode_name
from streamhub.adapters.presence import (
    Member,
    PresenceChange,
    PresenceGapListener,
    PresenceListener,
    PresenceStore,
    Roster,
)
from streamhub.adapters.pubsub import Subscriber
from streamhub.adapters.pubsub_sharded import ShardedSubscriber
from streamhub.adapters.redis import _redact
from streamhub.adapters.redis_pipe import Pipe, RedisLink, close_links, connection_pool, open_streams, redis_call
from streamhub.adapters.redis_shards import ShardedPipe, lua_script
from streamhub.errors import AdapterError

__all__ = ["RedisPresence"]

log = logging.getLogger(__name__)

_CLAIMS_PER_RENEWAL = 16  # dead engines one renewal removes at most (the rest at the next one)


def _script(name: str, *, cluster: bool = False) -> str:
    """A presence script after its preludes; see ``lua_script`` for ``cluster``."""
    return lua_script("lease.lua", "presence.lua", name, cluster=cluster)



class RedisPresence:
    """Members of every engine of a deployment, in one Redis.

    Args:
        url, key_prefix: as for ``RedisAdapter`` (the same deployment uses the same ones).
        ttl: seconds a killed engine's members outlive it at most (``presence_ttl_ms``).
        timeout: seconds a command may take.
        pipe: the ``RedisAdapter``'s pipe to share (its owner closes it); None: one of its own.
    """

    _pool: aioredis.ConnectionPool | None  # the single server's (pub/sub links, own pipe); None on a cluster
    _pipe: Pipe | ShardedPipe

    def __init__(self, url: str, key_prefix: str = "streamhub:", *, ttl: float = 15.0, timeout: float = 2.0,
                 connect_timeout: float = 1.0, pipe: Pipe | None = None) -> None:
        self._setup(url, key_prefix, ttl, timeout, cluster=False)
        self._pool = connection_pool(url, self.where, max_connections=16, timeout=timeout,
                                     connect_timeout=connect_timeout)
        self._own_pipe = pipe is None
        self._pipe = pipe if pipe is not None else Pipe(functools.partial(open_streams, self._pool), timeout)
        self._put = self._pipe.script(_script("presence_put.lua"))
        self._remove = self._pipe.script(_script("presence_remove.lua"))
        self._renew = self._pipe.script(_script("presence_renew.lua"))
        self._reconcile = self._pipe.script(_script("presence_reconcile.lua"))
        self._members = self._pipe.script(_script("presence_members.lua"))

    def _setup(self, url: str, key_prefix: str, ttl: float, timeout: float, *, cluster: bool) -> None:
        """What every Redis presence store holds, whatever its connections."""
        self.where = _redact(url)
        self.engine_id = uuid.uuid4().hex
        self.ttl = ttl
        self.keys = RedisKeys(key_prefix, cluster=cluster)
        self._timeout = timeout
        self._pool = None
        self._own_pipe = True
        self._own = self.keys.presence_engine(self.engine_id)
        self._mine: dict[tuple[str, str, str], Member] = {}  # (stream, group, connection) -> member: the truth
        self._dirty = False  # a write failed: Redis may not hold what ``_mine`` says
        self._subscriber: Subscriber | ShardedSubscriber | None = None
        self._listener: PresenceListener | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.claimed = 0  # members of dead engines this engine removed (tests, logs)

    # Lifecycle

    async def start(self, listener: PresenceListener, on_gap: PresenceGapListener | None = None) -> None:
        """Take a lease (claiming dead engines), open the pub/sub connection, and keep renewing."""
        self._listener = listener
        await self._open()
        await self._renew_once()
        self._subscriber = self._new_subscriber(listener, on_gap)
        await self._subscriber.start()
        self._renewer = asyncio.create_task(self._renew_forever(), name="streamhub-presence-lease")

    async def close(self) -> None:
        """Withdraw this engine's members (with leaves) and its lease, then release every connection."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        self._mine.clear()
        with contextlib.suppress(AdapterError):
            await self._announce_all("withdrawing this engine's members")
            await self._call("dropping this engine's lease",
                             self._pipe.call(b"ZREM", self.keys.presence_engines, self.engine_id))
        subscriber, self._subscriber = self._subscriber, None
        await close_links(subscriber, self._pipe if self._own_pipe else None, self._pool)

    # Changes

    async def join(self, stream: str, group: str, member: Member) -> None:
        await self._store(stream, group, member)

    async def update(self, stream: str, group: str, member: Member) -> None:
        await self._store(stream, group, member)

    async def leave(self, stream: str, group: str, member: Member) -> None:
        self._mine.pop((stream, group, member.connection_id), None)
        keys = [self.keys.presence_members(stream, group), self.keys.presence_seq(stream, group), self._own]
        args: list[bytes | str] = [member.connection_id, self.keys.presence_channel(stream, group),
                                   self._field(stream, group, member.connection_id), _json(member)]
        await self._write(f"withdrawing a member of {stream}/{group}", self._pipe.run(self._remove, keys, args))

    # Reads

    async def members(self, stream: str, group: str, limit: int) -> Roster:
        keys = [self.keys.presence_members(stream, group), self.keys.presence_seq(stream, group)]
        found: list[Any] = await self._call(f"reading the members of {stream}/{group}",
                                            self._pipe.run(self._members, keys, [limit]))
        members = sorted((Member.from_wire(orjson.loads(raw)) for raw in found[2:]),
                         key=lambda member: (member.joined_at, member.connection_id))
        return Roster(members[:limit], int(found[0]), int(found[1]))

    async def count(self, stream: str, group: str) -> int:
        count: int = await self._call(f"counting the members of {stream}/{group}",
                                      self._pipe.call(b"HLEN", self.keys.presence_members(stream, group)))
        return count

    async def watch(self, stream: str, group: str) -> None:
        if self._subscriber is not None:
            await self._subscriber.watch(self.keys.presence_channel(stream, group), stream, group)

    async def unwatch(self, stream: str, group: str) -> None:
        if self._subscriber is not None:
            await self._subscriber.unwatch(self.keys.presence_channel(stream, group))

    # Lease

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 4)
            try:
                await self._renew_once()
            except AdapterError as exc:
                self._dirty = True
                log.warning("presence lease of engine %s not renewed: %s", self.engine_id, exc.message)

    async def _renew_once(self) -> None:
        """Renew (claiming dead engines); rewrite this engine's members if Redis lost them or a write failed."""
        known, removed = await self._claim()
        if removed:
            self.claimed += removed
            log.info("presence: removed %d members of engines whose lease ran out", removed)
        if (not known and self._mine) or self._dirty:
            if not known and self._mine:
                log.warning("presence: this engine's members were gone from Redis at %s; announcing %d again",
                            self.where, len(self._mine))
                await self._reclaimed()
            await self._announce_all("announcing this engine's members")

    def _lease_ms(self) -> int:
        return int(self.ttl * 750)  # 3/4 of the ttl, renewed every 1/4 (see the module docstring)

    async def _claim(self) -> tuple[bool, int]:
        """Renew this engine's lease and remove the members of engines claimed: (lease was there, members removed)."""
        known, removed = await self._call("renewing the presence lease", self._pipe.run(
            self._renew, [self.keys.presence_engines],
            [self.engine_id, self._lease_ms(), self.keys.prefix, _CLAIMS_PER_RENEWAL]))
        return bool(known), int(removed)

    async def _reclaimed(self) -> None:
        """This engine's lease was gone with members to announce again (a hook: nothing to do on one server)."""

    async def _announce_all(self, what: str) -> None:
        """Make Redis hold exactly ``_mine`` (nothing at shutdown)."""
        args: list[bytes | str] = [self.keys.prefix]
        for (stream, group, connection), member in self._mine.items():
            args += [connection, self.keys.group_suffix(stream, group), _json(member)]
        await self._call(what, self._pipe.run(self._reconcile, [self._own], args))
        self._dirty = False

    async def _open(self) -> None:
        """Connect what must be connected before the first command (a hook: a single server needs nothing)."""

    def _new_subscriber(self, listener: PresenceListener,
                        on_gap: PresenceGapListener | None) -> Subscriber | ShardedSubscriber:
        pool = self._pool
        assert pool is not None
        return Subscriber(lambda: RedisLink(pool), listener, on_gap, where=self.where, health_interval=1.0,
                          timeout=self._timeout, decode=_change)

    # Private

    async def _store(self, stream: str, group: str, member: Member) -> None:
        self._mine[(stream, group, member.connection_id)] = member
        keys = [self.keys.presence_members(stream, group), self.keys.presence_seq(stream, group), self._own]
        args: list[bytes | str] = [member.connection_id, _json(member), self.keys.presence_channel(stream, group),
                                   self._field(stream, group, member.connection_id)]
        await self._write(f"announcing a member of {stream}/{group}", self._pipe.run(self._put, keys, args))

    async def _write(self, what: str, command: Awaitable[Any]) -> None:
        """A change; if it fails, the next renewal rewrites every member of this engine."""
        try:
            await self._call(what, command)
        except AdapterError:
            self._dirty = True
            raise

    def _field(self, stream: str, group: str, connection: str) -> bytes:
        return encode_name(connection) + b" " + self.keys.group_suffix(stream, group)

    async def _call(self, what: str, command: Awaitable[Any]) -> Any:
        return await redis_call(self.where, what, command)


def _json(member: Member) -> bytes:
    return orjson.dumps(member.to_wire())


def _change(stream: str, group: str, data: bytes) -> PresenceChange:
    """A presence channel message: ``{"seq", "action", "member"}``."""
    message = orjson.loads(data)
    return PresenceChange(stream, group, message["action"], Member.from_wire(message["member"]), int(message["seq"]))


_check: type[PresenceStore] = RedisPresence
