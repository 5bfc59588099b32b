"""Items in Redis, shared by every engine pointed at it (``modules::stream::adapters::RedisAdapter``).

Why it looks like this:

* Each write and its event are one Lua script (``lua/*.lua``): the script stores the item, maintains the indexes
  (``list_groups``/``list_all`` never scan the keyspace) and PUBLISHes the event on the group's channel, so
  every engine sees a group's events in commit order, its own included (they are delivered from the
  subscription, never locally).
* ``update`` keeps the one implementation of the ops (``core.update_ops``): read the JSON, apply the ops in
  Python, then write only if the stored JSON is still byte-identical (compare-and-set in ``write.lua``); a lost
  race retries on the fresh value the script returned. Updates of one item are serialised inside an engine, so
  races happen only between engines; an update queued behind another starts from the JSON that one stored
  instead of reading it back (one round trip per update under contention, not two).
* Commands share one connection and the commands of one loop tick one round trip (``redis_pipe.Pipe``:
  auto-pipelining, EVALSHA with the EVAL fallback); redis-py only opens connections (URL, TLS, AUTH, SELECT).
* Calls fail fast with ``AdapterError(temporary=True)`` while Redis is unreachable: no client-side retries
  (a retried write could apply twice), short connect and read timeouts. A broken connection fails the calls in
  flight on it and is re-established on the next call; the pub/sub side reconnects by itself
  (``pubsub.Subscriber``).
* Events reach the listener as the JSON the write script published (``EncodedEvent``): the hub frames those bytes
  as they came, and nothing decodes them unless a consumer reads more than the group and offset.
* Every key and channel name comes from ``keys.RedisKeys``.
* Values are encoded before any script runs, so a value orjson refuses fails its own call with nothing written
  and no offset taken. Values reach the adapter checked (``core.values``, at the engine's edge): orjson alone
  would write NaN as ``null``.
* Positions: every write script (and ``send``) numbers the change with the group's next offset, appends the event
  to the group's capped change log and publishes it, in the same atomic step (``lua/record.lua``, prepended to
  each script). A full log is trimmed a sixteenth of its size at a time (it holds at most ``size`` events, at
  least 15/16 of that once full), which spares Redis an LTRIM on most changes. The group's epoch is created
  once, by the first script that touches it; if Redis loses the data, the next touch creates a new epoch, so
  clients get a fresh snapshot instead of a wrong replay.

Acknowledged writes survive a Redis restart only as far as Redis persists them (``appendonly yes`` with
``appendfsync always`` for every write). With replicas, ``durable_replicas: N`` makes every write wait (one
``WAIT`` per pipelined batch) until N replicas hold it, so a failover to a replica keeps it; without it, a write
acknowledged just before its primary dies can be lost with it.

On a Redis Cluster (``redis+cluster://`` URL: ``redis_shards.ShardedPipe`` routes each command to its slot's
primary) the same scripts run, each on one group's keys, which share a hash slot (``keys.py``); events go out on
sharded pub/sub (``SPUBLISH``) and are read per primary (``pubsub_sharded.ShardedSubscriber``); the stream and
group indexes, in other slots, are kept right after each write (``redis_index.GroupIndex``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from streamhub.errors import AdapterError, ConfigError

try:  # the redis package is an extra (streamhub-engine[redis]): the embedded store works without it
    import redis.asyncio as aioredis
    from redis import exceptions

    from streamhub.adapters.pubsub_sharded import ShardedSubscriber
    from streamhub.adapters.redis_index import GroupIndex
    from streamhub.adapters.redis_pipe import (
        Packed,
        Pipe,
        RedisLink,
        close_links,
        connection_pool,
        open_streams,
        packed,
    )
    from streamhub.adapters.redis_shards import ShardedPipe, is_cluster_url, lua_script
except ModuleNotFoundError as missing:
    raise ConfigError("modules::stream::adapters::RedisAdapter needs the redis package, which is not installed: "
                      "pip install 'streamhub-engine[redis]'") from missing

from streamhub.adapters.base import EventListener, GapListener, StreamAdapter
from streamhub.adapters.keys import RedisKeys, decode_name, encode_name
from streamhub.adapters.pubsub import Subscriber
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.model import CREATE, DELETE, UPDATE, Change, EncodedEvent, ItemRef, StreamEvent, now_ms
from streamhub.core.positions import LogLimits, Position, missed_events, new_epoch
from streamhub.core.update_ops import UpdateOp, apply_ops

__all__ = ["RedisAdapter"]

_GROUP_CACHE = 4096
"""Groups whose packed key names ``_group`` keeps (cleared when full: rebuilding them is cheap, only not free)."""

MAX_UPDATE_ATTEMPTS = 1000
"""Lost compare-and-set races one ``update`` tolerates before giving up (each lost race means another write won)."""


def _script(name: str, *preludes: str, cluster: bool = False) -> str:
    """A Lua script's text after its preludes: ``record.lua`` (number, log and publish a change), ``values.lua``
    (read a group's values in creation order), ``ranked.lua`` (rank by arrival). Scripts cannot call each other,
    so shared steps are prepended. ``cluster``: as it runs on a Redis Cluster (``redis_shards.lua_script``)."""
    return lua_script(*preludes, name, cluster=cluster)


class RedisAdapter:
    """Storage and event bus in one Redis server.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL (credentials and db number included).
        key_prefix: prepended to every key and channel (deployments sharing a Redis pick different ones).
        timeout: seconds a command may take before the call fails.
        connect_timeout: seconds to wait for a TCP connection.
        health_interval: idle seconds after which the pub/sub connection is PINGed.
        max_connections: unused (kept for callers of earlier versions): commands share one pipelined connection.
        metrics: told of failed commands and pub/sub reconnections.
        durable_replicas: replicas that must hold each write before it is acknowledged (``WAIT``).
    """

    def __init__(self, url: str, key_prefix: str = "streamhub:", *, timeout: float = 2.0,
                 connect_timeout: float = 1.0, health_interval: float = 1.0, max_connections: int = 64,
                 limits: LogLimits | None = None, metrics: Metrics = NULL_METRICS,
                 durable_replicas: int = 0) -> None:
        self.where = _redact(url)
        self.cluster = is_cluster_url(url)
        self._metrics = metrics
        limits = limits or LogLimits()
        # Script arguments every change carries: a candidate epoch (used once per group), the log bounds.
        self._log_args = [new_epoch(), str(limits.size), str(max(1, int(limits.age * 1000)))]
        self.keys = RedisKeys(key_prefix, cluster=self.cluster)
        self._timeout = timeout
        self._health = health_interval
        self._pool: aioredis.ConnectionPool | None = None  # single server only (a cluster has one per node)
        self._pipe: Pipe | ShardedPipe
        if self.cluster:
            self._pipe = ShardedPipe(url, self.where, timeout=timeout, connect_timeout=connect_timeout,
                                     replicas=durable_replicas, metrics=metrics)
        else:
            self._pool = connection_pool(url, self.where, max_connections=max_connections, timeout=timeout,
                                         connect_timeout=connect_timeout)
            self._pipe = Pipe(functools.partial(open_streams, self._pool), timeout, replicas=durable_replicas)
        cluster = self.cluster
        self._write = self._pipe.script(_script("write.lua", "ranked.lua", "record.lua", cluster=cluster))
        self._delete = self._pipe.script(_script("delete.lua", "record.lua", cluster=cluster))
        self._send = self._pipe.script(_script("send.lua", "record.lua", cluster=cluster))
        self._list = self._pipe.script(_script("list.lua", "values.lua", cluster=cluster))
        self._snapshot = self._pipe.script(_script("snapshot.lua", "values.lua", cluster=cluster))
        self._replay = self._pipe.script(_script("replay.lua", cluster=cluster))
        self._index = GroupIndex(self._pipe, self.keys,
                                 self._pipe.script(_script("index_group.lua", "ranked.lua", cluster=cluster)))
        self._log_packed = packed(self._log_args)
        self._group_keys: dict[tuple[str, str], tuple[Packed, Packed]] = {}  # see _group
        self._subscriber: Subscriber | ShardedSubscriber | None = None
        self._updating: dict[tuple[str, str, str], _ItemUpdates] = {}
        self.update_races = 0  # compare-and-set attempts that lost to another writer (metrics, tests)

    @property
    def pipe(self) -> Pipe | ShardedPipe:
        """The connection every command of this adapter goes through (``RedisPresence`` shares it)."""
        return self._pipe

    # Lifecycle

    async def start(self, listener: EventListener, on_gap: GapListener | None = None) -> None:
        """Check Redis answers, then open the pub/sub connection; raises ``AdapterError`` if unreachable."""
        if isinstance(self._pipe, ShardedPipe):
            await self._call("reading the cluster's slot map", self._pipe.start())
            self._subscriber = ShardedSubscriber(self._pipe, listener, on_gap, health_interval=self._health,
                                                 timeout=self._timeout, metrics=self._metrics, decode=_encoded_event)
        else:
            await self._call("connecting", self._pipe.call(b"PING"))
            self._subscriber = Subscriber(self._link, listener, on_gap, where=self.where,
                                          health_interval=self._health, timeout=self._timeout,
                                          metrics=self._metrics, decode=_encoded_event)
        await self._subscriber.start()

    async def health(self) -> str | None:
        """Why Redis cannot serve now, or None: a PING must answer and the pub/sub connection be up."""
        ping = self._pipe.each_primary(b"PING") if isinstance(self._pipe, ShardedPipe) else self._pipe.call(b"PING")
        try:
            await self._call("checking readiness", ping)
        except AdapterError as exc:
            return exc.message
        if self._subscriber is None or not self._subscriber.connected:
            return f"Redis at {self.where}: the pub/sub connection is down (reconnecting)"
        return None

    async def close(self) -> None:
        """Drop the subscription and every connection (every acknowledged write is already in Redis)."""
        subscriber, self._subscriber = self._subscriber, None
        await close_links(subscriber, self._pipe, self._pool)

    # Reads

    async def get(self, ref: ItemRef) -> tuple[bool, Any]:
        raw = await self._read_item(ref)
        return (False, None) if raw is None else (True, orjson.loads(raw))

    async def list_items(self, stream: str, group: str) -> list[Any]:
        keys = [self.keys.items(stream, group), self.keys.order(stream, group)]
        values: list[bytes] = await self._call(f"listing {stream}/{group}", self._pipe.run(self._list, keys, ()))
        return [orjson.loads(raw) for raw in values]

    async def list_groups(self, stream: str) -> list[str]:
        groups: list[bytes] = await self._call(f"listing the groups of {stream}",
                                               self._pipe.call(b"ZRANGE", self.keys.groups(stream), 0, -1))
        return [decode_name(group) for group in groups]

    async def list_all(self) -> dict[str, list[str]]:
        names: list[bytes] = await self._call("listing streams", self._pipe.call(b"SMEMBERS", self.keys.streams))
        streams = sorted(decode_name(name) for name in names)
        groups: list[list[bytes]] = await self._call("listing streams", asyncio.gather(
            *(self._pipe.call(b"ZRANGE", self.keys.groups(stream), 0, -1) for stream in streams)))
        return {stream: sorted(decode_name(group) for group in found)
                for stream, found in zip(streams, groups, strict=True) if found}

    # Writes

    async def set(self, ref: ItemRef, value: Any) -> Change:
        raw = _encode(value, f"cannot store {_where(ref)}")
        timestamp = now_ms()
        _, old, offset = await self._write_item(ref, raw, timestamp, "set", b"")
        kind = CREATE if old is None else UPDATE
        return Change(old is not None, None if old is None else orjson.loads(old), value,
                      StreamEvent(ref.stream, ref.group, ref.item, kind, value, timestamp=timestamp, offset=offset))

    async def update(self, ref: ItemRef, ops: Sequence[UpdateOp]) -> Change:
        with self._updating_item(ref) as queue:
            async with queue.lock:
                try:
                    return await self._update(ref, ops, queue)
                except BaseException:
                    queue.stored = _UNKNOWN
                    raise

    async def delete(self, ref: ItemRef) -> Change:
        timestamp = now_ms()
        args: list[bytes | str] = [
            encode_name(ref.item), encode_name(ref.stream), encode_name(ref.group),
            self.keys.channel(ref.stream, ref.group), self._event_head(ref, timestamp), *self._log_args]
        keys, _ = self._group(ref.stream, ref.group)
        removed: list[Any] | None = await self._call(f"deleting {_where(ref)}", self._pipe.run(
            self._delete, keys, args, durable=True))
        if removed is None:
            return Change(False, None, None, None)
        if removed[2] == 1:
            await self._call(f"updating the indexes after deleting {_where(ref)}",
                             self._index.emptied(ref.stream, ref.group))
        value = orjson.loads(removed[0])
        return Change(True, value, None, StreamEvent(ref.stream, ref.group, ref.item, DELETE, value,
                                                     timestamp=timestamp, offset=int(removed[1])))

    async def send(self, event: StreamEvent) -> StreamEvent:
        wire = event.to_wire()
        del wire["offset"]  # the script numbers the event
        keys = [self.keys.position(event.stream, event.group), self.keys.log(event.stream, event.group)]
        what = f"cannot send an event to {event.stream}/{event.group}"
        args: list[bytes | str] = [self.keys.channel(event.stream, event.group), _encode(wire, what)[:-1],
                                   *self._log_args]
        offset: int = await self._call(f"sending an event to {event.stream}/{event.group}",
                                       self._pipe.run(self._send, keys, args))
        return replace(event, offset=int(offset))

    # Positions

    async def snapshot(self, stream: str, group: str, item: str | None) -> tuple[Any, Position]:
        keys = [self.keys.items(stream, group), self.keys.order(stream, group), self.keys.position(stream, group)]
        args = ["group" if item is None else "item", encode_name(item or ""), self._log_args[0]]
        found: list[Any] = await self._call(f"reading a snapshot of {stream}/{group}",
                                            self._pipe.run(self._snapshot, keys, args))
        position = Position(decode_name(found[0]), int(found[1]))
        if item is not None:
            return (orjson.loads(found[2]) if len(found) > 2 and found[2] else None), position
        return [orjson.loads(raw) for raw in found[2:] if raw], position

    async def replay(self, stream: str, group: str, since: Position) -> tuple[list[StreamEvent], Position] | None:
        keys = [self.keys.position(stream, group), self.keys.log(stream, group)]
        found: list[Any] | None = await self._call(f"reading the change log of {stream}/{group}",
                                                   self._pipe.run(self._replay, keys, [encode_name(since.epoch)]))
        if found is None:
            return None
        last = int(found[0])
        events = missed_events([StreamEvent.from_wire(orjson.loads(raw)) for raw in found[1]], since.offset, last)
        return None if events is None else (events, Position(since.epoch, last))

    async def watch(self, stream: str, group: str) -> None:
        if self._subscriber is not None:
            await self._subscriber.watch(self.keys.channel(stream, group), stream, group)

    async def unwatch(self, stream: str, group: str) -> None:
        if self._subscriber is not None:
            await self._subscriber.unwatch(self.keys.channel(stream, group))

    # Private

    async def _update(self, ref: ItemRef, ops: Sequence[UpdateOp], queue: _ItemUpdates) -> Change:
        # The JSON this engine's previous update of the item wrote (while updates queue up on it) stands in for a
        # read: if anything else wrote since, the compare-and-set fails and returns the fresh value.
        current = queue.stored if queue.stored is not _UNKNOWN else await self._read_item(ref)
        for _ in range(MAX_UPDATE_ATTEMPTS):
            existed = current is not None
            old = None if current is None else orjson.loads(current)
            new = apply_ops(old if existed else {}, existed, ops)  # raises before anything is written
            timestamp = now_ms()
            raw = _encode(new, f"cannot store {_where(ref)}")
            written, found, offset = await self._write_item(ref, raw, timestamp, "cas", current or b"")
            if written:
                queue.stored = raw
                kind = UPDATE if existed else CREATE
                return Change(existed, old, new, StreamEvent(ref.stream, ref.group, ref.item, kind, new,
                                                             timestamp=timestamp, offset=offset))
            self.update_races += 1
            current = found
        raise AdapterError(f"stream.update of {_where(ref)}: lost {MAX_UPDATE_ATTEMPTS} races to concurrent "
                           "writers; retry later", temporary=True)

    async def _write_item(self, ref: ItemRef, raw: bytes, timestamp: int, mode: str,
                          expected: bytes) -> tuple[bool, bytes | None, int]:
        """Run ``write.lua``; returns (written, old or current JSON, offset of the change if written)."""
        keys, names = self._group(ref.stream, ref.group)
        args: list[bytes | str | Packed] = [
            encode_name(ref.item), raw, names, self._event_head(ref, timestamp), mode, expected, self._log_packed]
        reply: list[Any] = await self._call(f"writing {_where(ref)}",
                                            self._pipe.run(self._write, keys, args, durable=True))
        written = reply[0] == 1
        if written and reply[3] == 1:
            await self._call(f"updating the indexes after writing {_where(ref)}",
                             self._index.added(ref.stream, ref.group))
        return written, reply[1], int(reply[2]) if written else 0

    def _group(self, stream: str, group: str) -> tuple[Packed, Packed]:
        """A group's script keys, and its (stream, group, channel) arguments, packed once while the group is busy."""
        found = self._group_keys.get((stream, group))
        if found is None:
            if len(self._group_keys) >= _GROUP_CACHE:
                self._group_keys.clear()
            names = [encode_name(stream), encode_name(group), self.keys.channel(stream, group)]
            keys = self._pipe.packed_keys(self.keys.group_keys(stream, group))
            found = self._group_keys[(stream, group)] = (keys, packed(names))
        return found

    @staticmethod
    def _event_head(ref: ItemRef, timestamp: int) -> bytes:
        """``StreamEvent.to_wire()`` JSON up to the event type; the scripts append the type and the data."""
        return b'{"type":"stream","timestamp":%d,"streamName":%s,"groupId":%s,"id":%s,"event":{"type":"' % (
            timestamp, orjson.dumps(ref.stream), orjson.dumps(ref.group), orjson.dumps(ref.item))

    @contextlib.contextmanager
    def _updating_item(self, ref: ItemRef) -> Iterator[_ItemUpdates]:
        """The queue serialising this engine's updates of one item; dropped when nobody holds or awaits it."""
        key = (ref.stream, ref.group, ref.item)
        queue = self._updating.get(key)
        if queue is None:
            queue = self._updating[key] = _ItemUpdates()
        queue.users += 1
        try:
            yield queue
        finally:
            queue.users -= 1
            if not queue.users:
                del self._updating[key]

    async def _read_item(self, ref: ItemRef) -> bytes | None:
        raw: bytes | None = await self._call(f"reading {_where(ref)}", self._pipe.call(
            b"HGET", self.keys.items(ref.stream, ref.group), encode_name(ref.item)))
        return raw

    def _link(self) -> RedisLink:
        assert self._pool is not None  # the single-server subscriber's links
        return RedisLink(self._pool)

    async def _call(self, what: str, command: Awaitable[Any]) -> Any:
        """Await a Redis command, turning its failures into ``AdapterError`` naming Redis, the URL and the call."""
        try:
            return await command
        except exceptions.ConnectionError as exc:
            self._metrics.redis_error("connection")
            raise AdapterError(f"Redis at {self.where} unreachable while {what}: {exc}", temporary=True) from exc
        except exceptions.TimeoutError as exc:
            self._metrics.redis_error("timeout")
            raise AdapterError(f"Redis at {self.where} did not answer within {self._timeout}s while {what} "
                               "(a write may or may not have been applied)", temporary=True) from exc
        except exceptions.RedisError as exc:
            self._metrics.redis_error("error")
            raise AdapterError(f"Redis at {self.where} failed while {what}: {exc}") from exc


_UNKNOWN: Any = object()
"""``_ItemUpdates.stored`` when this engine does not know what the item holds (a read is due)."""


class _ItemUpdates:
    """One item's updates queued in this engine: the lock taking them in turn, how many hold or await it, and the
    JSON the last of them stored (None: missing), so the next one need not read it back (one round trip each)."""

    __slots__ = ("lock", "stored", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.stored: bytes | None = _UNKNOWN


def _encoded_event(stream: str, group: str, data: bytes) -> EncodedEvent:
    """A published event as it came (``record.lua`` ends it with ``,"offset":N}``); only the offset is read."""
    if not data.startswith(b'{"type":"stream",') or not data.endswith(b"}"):
        raise ValueError("not an event")
    return EncodedEvent(stream, group, int(data[data.rindex(b":") + 1:-1]), data)


def _encode(value: Any, what: str) -> bytes:
    """Encode before any script runs: a value orjson refuses fails this call alone, no offset taken."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise AdapterError(f"{what}: value is not JSON ({exc})") from exc


def _where(ref: ItemRef) -> str:
    return f"{ref.stream}/{ref.group}/{ref.item}"


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


_check: type[StreamAdapter] = RedisAdapter
