"""Redis Cluster routing: which primary owns a key's hash slot, and one auto-pipelined ``Pipe`` per primary.

Why it looks like this:

* The slot map comes from ``CLUSTER SLOTS`` (asked of the seed node of the ``redis+cluster://`` URL, then of any
  known node). It is asked again every ``refresh_interval`` seconds and at once after a redirect or a broken
  connection, so a moved slot or a primary failed over to its replica is followed within seconds. Listeners
  registered with ``on_change`` hear of every new map (the sharded subscriber moves its channels with it).
* A command goes to the owner of the slot of its first key (``run``: the script's first key; ``call``: the
  argument after the command name). ``MOVED`` (the slot has a new owner) and ``TRYAGAIN``/``CLUSTERDOWN`` (a slot
  in transit, a cluster without quorum) mean the command was not run, so it is sent again (bounded); ``ASK`` sends
  it once to the importing node after ``ASKING``. A broken connection fails what was in flight on it (a write
  may or may not have applied: never retried) and triggers a refresh.
* Each primary's commands share one connection and one round trip per tick (``redis_pipe.Pipe``), with the same
  durable-write ``WAIT`` as a single server. Node connections reuse the seed URL's credentials and TLS settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.resources
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions
from redis.crc import key_slot

from streamhub.adapters.redis_pipe import Arg, Packed, Pipe, Script, connection_pool, open_streams, packed
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.errors import AdapterError, ConfigError

__all__ = [
    "CLUSTER_SCHEMES",
    "Addr",
    "ClusterUnavailableError",
    "ShardedPipe",
    "SlotMap",
    "is_cluster_url",
    "key_slot",
    "lua_script",
    "node_url",
    "seeds",
]

log = logging.getLogger(__name__)

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
SLOTS = 16384
Addr = tuple[str, int]

_REDIRECTS = 5
"""Times one command may be sent again after MOVED/TRYAGAIN/CLUSTERDOWN before its call fails."""


class ClusterUnavailableError(exceptions.ConnectionError):
    """A slot stayed unserved (no owner, in transit, the cluster without quorum) through every retry; the command
    was not run (a connection-class error, so callers report it as temporary)."""


def node_url(url: str, addr: Addr) -> str:
    """The plain ``redis://``/``rediss://`` URL of one node: the cluster URL's scheme without ``+cluster``, its
    credentials and options, and ``addr`` as host and port."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    netloc = f"{userinfo}{at}{host}:{addr[1]}"
    return urlunsplit(parts._replace(scheme=parts.scheme.removesuffix("+cluster"), netloc=netloc))


def seeds(url: str, where: str) -> list[Addr]:
    """The nodes a cluster URL names: ``redis+cluster://[user:pass@]host[:port][,host[:port]...]`` (port 6379 by
    default; IPv6 in brackets), asked in turn for the slot map until one answers. Raises ``ConfigError``."""
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    found: list[Addr] = []
    for entry in hosts.split(","):
        host, port = entry, "6379"
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":") or port
        elif ":" in entry:
            host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"redis_url {where}: {entry!r} is not a host[:port] of a cluster node")
        found.append((host, int(port)))
    return found


class SlotMap:
    """The owner of each hash slot, as one ``CLUSTER SLOTS`` reply gave it."""

    __slots__ = ("owners", "primaries")

    def __init__(self, owners: list[Addr | None]) -> None:
        self.owners = owners
        self.primaries = {owner for owner in owners if owner is not None}

    @classmethod
    def parse(cls, reply: Sequence[Any], asked: Addr) -> SlotMap:
        """Read a ``CLUSTER SLOTS`` reply; a node listed without an address is the node asked (``asked``)."""
        owners: list[Addr | None] = [None] * SLOTS
        for entry in reply:
            first, last, primary = int(entry[0]), int(entry[1]), entry[2]
            host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
            addr = (host or asked[0], int(primary[1]))
            owners[first:last + 1] = [addr] * (last - first + 1)
        return cls(owners)

    def owner(self, slot: int) -> Addr | None:
        return self.owners[slot]


class ShardedPipe:
    """Every command of one adapter, routed to the primary that owns its slot.

    Args:
        url: ``redis+cluster://`` or ``rediss+cluster://`` URL of any node, or of several separated by commas
            (credentials and TLS apply to all).
        where: the URL without its password, for messages.
        timeout: seconds a command may wait for its reply (as ``Pipe``).
        connect_timeout: seconds to wait for a TCP connection.
        replicas: replicas a ``durable`` write must reach before it answers.
        refresh_interval: seconds between two readings of the slot map while nothing prompts one.
        metrics: told of every change of the slot map after the first.
    """

    def __init__(self, url: str, where: str, *, timeout: float, connect_timeout: float, replicas: int = 0,
                 refresh_interval: float = 1.0, metrics: Metrics = NULL_METRICS) -> None:
        self.where = where
        self._metrics = metrics
        self._url = url
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._replicas = replicas
        self._interval = refresh_interval
        self._seeds = seeds(url, where)
        self._scripts: list[Script] = []
        self._pools: dict[Addr, aioredis.ConnectionPool] = {}
        self._pipes: dict[Addr, Pipe] = {}
        self._map: SlotMap | None = None
        self._listeners: list[Callable[[SlotMap], None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # pipes of nodes gone from the map, being closed

    # Lifecycle

    async def start(self) -> None:
        """Read the slot map from the seed (raises ``AdapterError`` if no node answers), then follow it."""
        await self._refresh()
        if self._map is None:
            raise AdapterError(f"Redis Cluster at {self.where}: no node answered CLUSTER SLOTS", temporary=True)
        self._task = asyncio.create_task(self._follow(), name="streamhub-redis-cluster-slots")

    async def close(self) -> None:
        """Stop following the slot map, fail what is in flight and drop every connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pipes, self._pipes = self._pipes, {}
        for pipe in pipes.values():
            await pipe.close()
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.disconnect()

    # What the adapter calls (the same as ``Pipe``)

    def script(self, body: str) -> Script:
        """Register a script on every node, present and future."""
        script = Script(body)
        self._scripts.append(script)
        for pipe in self._pipes.values():
            pipe.register(script)
        return script

    def packed_keys(self, keys: Sequence[Arg]) -> Packed:
        """``keys`` packed for ``run``, with the slot of the first one."""
        return packed(keys, _slot(keys[0]))

    async def call(self, *args: Arg | Packed) -> Any:
        """Send one command to the owner of its key's slot (``args[1]``), following redirects."""
        slot = _slot(args[1]) if len(args) > 1 and not isinstance(args[1], Packed) else 0
        return await self._routed(slot, lambda pipe: pipe.call(*args))

    async def run(self, script: Script, keys: Sequence[Arg] | Packed, args: Sequence[Arg | Packed], *,
                  durable: bool = False) -> Any:
        """Run a script on the owner of its first key's slot, following redirects."""
        slot = keys.slot if isinstance(keys, Packed) else _slot(keys[0])
        if slot is None:
            raise ValueError("keys packed without their slot: pack them with ShardedPipe.packed_keys")
        return await self._routed(slot, lambda pipe: pipe.run(script, keys, args, durable=durable))

    async def each_primary(self, *args: Arg) -> list[Any]:
        """Send one command to every primary (``PING`` for readiness); fails if any of them fails."""
        primaries = sorted(self._map.primaries) if self._map is not None else self._seeds[:1]
        return await asyncio.gather(*(self._pipe(addr).call(*args) for addr in primaries))

    # Topology

    @property
    def slot_map(self) -> SlotMap | None:
        """The newest slot map (None before ``start``)."""
        return self._map

    def on_change(self, listener: Callable[[SlotMap], None]) -> None:
        """Call ``listener`` with every new slot map (synchronously, in the refreshing task)."""
        self._listeners.append(listener)

    def pool(self, addr: Addr) -> aioredis.ConnectionPool:
        """The connection pool of one node (sharded subscribers open their links from it)."""
        found = self._pools.get(addr)
        if found is None:
            found = self._pools[addr] = connection_pool(
                node_url(self._url, addr), self.where, max_connections=64, timeout=self._timeout,
                connect_timeout=self._connect_timeout)
        return found

    def refresh_soon(self) -> None:
        """Read the slot map again now rather than at the next interval."""
        self._wake.set()

    # Private

    def _pipe(self, addr: Addr) -> Pipe:
        pipe = self._pipes.get(addr)
        if pipe is None:
            pipe = self._pipes[addr] = Pipe(functools.partial(open_streams, self.pool(addr)), self._timeout,
                                            replicas=self._replicas)
            for script in self._scripts:
                pipe.register(script)
        return pipe

    async def _routed(self, slot: int, send: Callable[[Pipe], Awaitable[Any]]) -> Any:
        addr = self._map.owner(slot) if self._map is not None else None
        for attempt in range(_REDIRECTS + 1):
            if addr is None:
                raise ClusterUnavailableError(f"hash slot {slot} is not served by any node")
            try:
                return await send(self._pipe(addr))
            except exceptions.ResponseError as exc:
                message = str(exc)
                kind, _, rest = message.partition(" ")
                if kind not in ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"):
                    raise
                if attempt == _REDIRECTS:
                    self.refresh_soon()
                    raise ClusterUnavailableError(f"slot {slot} still unavailable after {_REDIRECTS} retries: "
                                                  f"{message}") from exc
                self.refresh_soon()
                if kind == "ASK":
                    return await self._asking(_addr(rest.split(" ")[-1]), send)
                if kind == "MOVED":
                    addr = _addr(rest.split(" ")[-1])
                    self._moved(slot, addr)
                    continue
                await asyncio.sleep(0.05 * (attempt + 1))  # a slot in transit or no quorum yet: give it a moment
                addr = self._map.owner(slot) if self._map is not None else addr
            except exceptions.ConnectionError:
                self.refresh_soon()  # a failed primary: its replica may take over
                raise
        raise AssertionError("unreachable")

    async def _asking(self, addr: Addr, send: Callable[[Pipe], Awaitable[Any]]) -> Any:
        """Send once to the node importing the slot, ``ASKING`` first on the same connection."""
        pipe = self._pipe(addr)
        _, result = await asyncio.gather(pipe.call(b"ASKING"), send(pipe))
        return result

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self._refresh()
            except Exception:
                log.exception("reading the slot map of the Redis Cluster at %s failed", self.where)

    async def _refresh(self) -> None:
        """Ask known nodes (the seeds last) for the slot map until one answers; publish it if it changed."""
        candidates = [*(sorted(self._map.primaries) if self._map is not None else []), *self._seeds]
        best: SlotMap | None = None
        for addr in dict.fromkeys(candidates):
            try:
                reply = await self._pipe(addr).call(b"CLUSTER", b"SLOTS")
            except (exceptions.RedisError, OSError) as exc:
                log.debug("CLUSTER SLOTS on %s:%d failed: %r", *addr, exc)
                continue
            found = SlotMap.parse(reply, addr)
            if best is None or found.owners.count(None) < best.owners.count(None):
                best = found
            if None not in found.owners:
                break  # else a node that does not see every slot served yet (mid-failover): ask another
        if best is not None and (self._map is None or best.owners != self._map.owners):
            self._install(best)

    def _moved(self, slot: int, addr: Addr) -> None:
        """A ``MOVED`` reply: the slot's new owner, known before the next reading of the map (a new map, never a
        change in place, so listeners hear of it and the next reading compares against what they were told)."""
        if self._map is not None and self._map.owner(slot) != addr:
            owners = list(self._map.owners)
            owners[slot] = addr
            self._install(SlotMap(owners), announce=False)

    def _install(self, found: SlotMap, *, announce: bool = True) -> None:
        old, self._map = self._map, found
        if old is not None and announce:
            self._metrics.redis_slots_changed()
            log.info("Redis Cluster at %s: slot map changed (primaries %s)", self.where,
                     ", ".join(f"{host}:{port}" for host, port in sorted(found.primaries)))
        for addr in [addr for addr in self._pipes if addr not in found.primaries and addr not in self._seeds]:
            closing = asyncio.create_task(self._pipes.pop(addr).close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        for listener in self._listeners:
            try:
                listener(found)
            except Exception:
                log.exception("slot map listener failed")


def _slot(key: Arg) -> int:
    raw = key if isinstance(key, bytes) else key.encode() if isinstance(key, str) else b"%d" % key
    return key_slot(raw)


def _addr(text: str) -> Addr:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def is_cluster_url(url: str) -> bool:
    """True for a ``redis+cluster://`` or ``rediss+cluster://`` URL."""
    return url.startswith(CLUSTER_SCHEMES)


def lua_script(*parts: str, cluster: bool) -> str:
    """A script's text: ``parts`` of ``adapters/lua`` joined, preludes first (scripts cannot call each other, so
    shared steps are prepended). On a Redis Cluster it publishes on sharded pub/sub, and its ``#!lua`` line makes
    Redis refuse any key or channel outside the slot of its first key (without it, Redis 7 lets a script reach
    other slots of the same node, so a cross-slot script would work until its slots land on different nodes)."""
    lua = importlib.resources.files("streamhub.adapters").joinpath("lua")
    text = "".join(lua.joinpath(part).read_text("utf-8") for part in parts)
    return "#!lua\n" + text.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'") if cluster else text
