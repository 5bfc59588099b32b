"""Presence on a Redis Cluster: ``RedisPresence``'s guarantees when a group's keys and the engines' keys live in
different hash slots (no script may touch both).

Why it looks like this (keys in ``keys.py``, scripts ``lua/presence_group_*.lua``, ``presence_claim.lua``,
``presence_swept.lua``):

* A change is two single-slot steps, ordered so that a crash between them never leaves a member nobody removes:
  a member is listed in its engine's list (``pe:``, slot ``{engines}``) before it is put in its group, and taken
  out of its group before it is unlisted. A member listed but not in its group costs a removal that finds
  nothing. The steps of one member never interleave (a lock per member), and each step set brings Redis in line
  with what ``_mine`` says when it starts, so a join and a leave racing each other end as ``_mine`` ends.
* A group's members hash carries, beside it, which engine holds each member (``po:``). Removing a member for a
  sweep names the dead engine and removes nothing another engine holds.
* A renewal claims dead engines atomically in the ``{engines}`` slot (one claimer): each one's list becomes a
  sweep list, scheduled in a sorted set. The claimer removes the members group by group (with leaves), then
  confirms them; a sweep not confirmed (the claimer died or lost Redis midway) falls due again after one lease
  and the next renewal of any engine takes it over. Removals are idempotent, so a sweep run twice announces each
  leave once.
* An engine that finds its own lease claimed while it lived (cut off longer than its lease) takes a new id before
  announcing its members again, so the pending sweep of its old id (which only removes members held under that
  id) cannot undo the announcement; the old id's leftovers are swept like a dead engine's.
* Every script runs in one slot, and Redis checks it (``redis_shards.lua_script``).
* Presence changes go out on sharded pub/sub (``SPUBLISH``) and are read per primary
  (``pubsub_sharded.ShardedSubscriber``); the commands go through the adapter's ``ShardedPipe`` when the registry
  hands it over, else one of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from streamhub.adapters.keys import decode_name, encode_name
from streamhub.adapters.presence import Member, PresenceGapListener, PresenceListener
from streamhub.adapters.pubsub import Subscriber
from streamhub.adapters.pubsub_sharded import ShardedSubscriber
from streamhub.adapters.redis_presence import _CLAIMS_PER_RENEWAL, RedisPresence, _change, _json, _script, log
from streamhub.adapters.redis_shards import ShardedPipe
from streamhub.errors import AdapterError

__all__ = ["ClusterPresence"]

Key = tuple[str, str, str]  # (stream, group, connection)


class ClusterPresence(RedisPresence):
    """Members of every engine of a deployment, in one Redis Cluster.

    Args:
        url: ``redis+cluster://`` (or ``rediss+cluster://``) URL of any node; key_prefix, ttl, timeout,
            connect_timeout: as ``RedisPresence``.
        pipe: the ``RedisAdapter``'s router to share (its owner starts and closes it); None: one of its own.
    """

    def __init__(self, url: str, key_prefix: str = "streamhub:", *, ttl: float = 15.0, timeout: float = 2.0,
                 connect_timeout: float = 1.0, pipe: ShardedPipe | None = None) -> None:
        self._setup(url, key_prefix, ttl, timeout, cluster=True)
        self._own_pipe = pipe is None
        self._router = pipe if pipe is not None else ShardedPipe(url, self.where, timeout=timeout,
                                                                 connect_timeout=connect_timeout)
        self._pipe = self._router
        self._members = self._router.script(_script("presence_members.lua", cluster=True))
        self._group_put = self._router.script(_script("presence_group_put.lua", cluster=True))
        self._group_remove = self._router.script(_script("presence_group_remove.lua", cluster=True))
        self._claim_script = self._router.script(_script("presence_claim.lua", cluster=True))
        self._swept = self._router.script(_script("presence_swept.lua", cluster=True))
        self._locks: dict[bytes, tuple[asyncio.Lock, list[int]]] = {}  # member field -> lock, [users]

    # Changes

    async def leave(self, stream: str, group: str, member: Member) -> None:
        key = (stream, group, member.connection_id)
        self._mine.pop(key, None)
        await self._write(f"withdrawing a member of {stream}/{group}", self._sync(key, member))

    async def _store(self, stream: str, group: str, member: Member) -> None:
        key = (stream, group, member.connection_id)
        self._mine[key] = member
        await self._write(f"announcing a member of {stream}/{group}", self._sync(key, None))

    async def _sync(self, key: Key, leaving: Member | None) -> None:
        """Bring one member in Redis in line with ``_mine``: listed, then put; or removed, then unlisted."""
        stream, group, connection = key
        field = self._field(stream, group, connection)
        members, seq, owners, channel = self.keys.presence_group_keys(self.keys.group_suffix(stream, group))
        async with self._lock(field):
            member, own, engine = self._mine.get(key), self._own, self.engine_id
            if member is not None:
                await self._router.call(b"HSET", own, field, b"1")
                await self._router.run(self._group_put, [members, seq, owners],
                                       [connection, _json(member), channel, engine])
            else:
                said = _json(leaving) if leaving is not None else b""
                await self._router.run(self._group_remove, [members, seq, owners], [connection, channel, said, b""])
                await self._router.call(b"HDEL", own, field)

    @contextlib.asynccontextmanager
    async def _lock(self, field: bytes) -> AsyncIterator[None]:
        """One member's steps, one set at a time (released locks are forgotten)."""
        entry = self._locks.get(field)
        if entry is None:
            entry = self._locks[field] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[field]

    # Lease

    async def _open(self) -> None:
        if self._own_pipe:
            await self._call("reading the cluster's slot map", self._router.start())

    async def _claim(self) -> tuple[bool, int]:
        """Renew the lease and claim dead engines (one atomic step), then run the sweeps this renewal took."""
        found: list[Any] = await self._call("renewing the presence lease", self._router.run(
            self._claim_script, [self.keys.presence_engines, self.keys.presence_sweeps],
            [self.engine_id, self._lease_ms(), self.keys.engines_prefix, _CLAIMS_PER_RENEWAL]))
        taken = found[1]
        removed = 0
        for i in range(0, len(taken), 2):
            engine = decode_name(taken[i])
            try:
                removed += await self._sweep(engine, taken[i + 1])
            except AdapterError as exc:  # the sweep stays pending: due again after one lease
                log.warning("presence: removing the members of dead engine %s stopped (%s); retried later", engine,
                            exc.message)
        return bool(found[0]), removed

    async def _sweep(self, engine: str, fields: list[bytes]) -> int:
        """Remove a claimed engine's members from their groups (with leaves), then forget them."""
        removed = await self._remove_members(engine, fields)
        await self._call(f"closing the sweep of engine {engine}", self._router.run(
            self._swept, [self.keys.presence_sweeps, self.keys.presence_sweep(engine)], [engine, *fields]))
        return removed

    async def _remove_members(self, engine: str, fields: list[bytes]) -> int:
        """Remove the members an engine's list fields name, those it still holds only; how many were removed."""
        owner = encode_name(engine)

        async def remove(field: bytes) -> int:
            connection, _, suffix = field.partition(b" ")
            members, seq, owners, channel = self.keys.presence_group_keys(suffix)
            removed: int = await self._router.run(self._group_remove, [members, seq, owners],
                                                  [connection, channel, b"", owner])
            return removed

        done = await self._call(f"removing the members of engine {engine}",
                                asyncio.gather(*(remove(field) for field in fields)))
        return sum(done)

    async def _reclaimed(self) -> None:
        """Claimed while alive: take a new id (and its lease) so the old id's pending sweep spares the members."""
        self.engine_id = uuid.uuid4().hex
        self._own = self.keys.presence_engine(self.engine_id)
        _, removed = await self._claim()
        self.claimed += removed

    async def _announce_all(self, what: str) -> None:
        """Make Redis hold exactly ``_mine``: every member of it, and every member listed under this id."""
        listed: list[bytes] = await self._call(what, self._router.call(b"HKEYS", self._own))
        keys = {*self._mine, *(_key(field) for field in listed)}
        await self._call(what, asyncio.gather(*(self._sync(key, None) for key in keys)))
        self._dirty = False

    def _new_subscriber(self, listener: PresenceListener,
                        on_gap: PresenceGapListener | None) -> Subscriber | ShardedSubscriber:
        return ShardedSubscriber(self._router, listener, on_gap, health_interval=1.0, timeout=self._timeout,
                                 decode=_change)


def _key(field: bytes) -> Key:
    """The member an engine's list field names: ``<connection> {<n>:<stream>:<group>}`` (keys.group_suffix)."""
    connection, _, suffix = field.partition(b" ")
    size, _, rest = suffix[1:-1].partition(b":")
    stream, group = rest[:int(size)], rest[int(size) + 1:]
    return decode_name(stream), decode_name(group), decode_name(connection)
