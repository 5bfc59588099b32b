"""Every Redis key and channel name the Redis adapter uses, built in one place.

Layout under the deployment's prefix ``P`` (default ``streamhub:``)::

    P i:<n>:<stream>:<group>   HASH   item id -> item JSON
    P o:<n>:<stream>:<group>   ZSET   item id -> creation rank (``list`` order)
    P e:<n>:<stream>:<group>   channel: the group's events, as ``StreamEvent.to_wire()`` JSON
    P p:<n>:<stream>:<group>   HASH   the group's position: ``epoch`` (set once) and ``offset`` (last change)
    P l:<n>:<stream>:<group>   LIST   the group's change log: recent event JSON, capped, expiring when idle
    P g:<stream>               ZSET   group id -> creation rank (``list_groups``, no keyspace scan)
    P streams                  SET    names of streams holding at least one group (``list_all``)
    P pm:<n>:<stream>:<group>  HASH   presence: connection id -> member JSON (every engine's members)
    P ps:<n>:<stream>:<group>  STRING presence: the group's last change number (``seq``)
    P pc:<n>:<stream>:<group>  channel: presence changes of the group, ``{"seq","action","member"}`` JSON
    P po:<n>:<stream>:<group>  HASH   presence, Redis Cluster only: connection id -> id of the engine holding it
    P presence:engines         ZSET   presence: engine id -> lease expiry (ms, Redis clock)
    P pe:<engine id>           HASH   presence: ``<connection id> <n>:<stream>:<group>`` -> 1, an engine's members
    P pz:<engine id>           HASH   presence, Redis Cluster only: a claimed engine's members still to remove
    P presence:sweeps          ZSET   presence, Redis Cluster only: claimed engine id -> when a sweeper may take it
    P cluster:engines          ZSET   cluster: engine id -> lease expiry (ms, Redis clock)
    P ca:<engine id>           STRING cluster: what an engine serves, ``{"functions": [...], "triggers": {...}}`` JSON
    P cg                       HASH   cluster: join guard id -> trigger JSON, guards whose engine died (fail closed)
    P cx:<engine id>           channel: cluster: routed calls to an engine and answers to its calls
    P cn                       channel: cluster: ids of engines whose announcement changed

``<n>`` is the byte length of the UTF-8 stream name, so the stream/group split is unambiguous whatever the names
hold (``:``, ``*``, ``{``...): distinct ``(stream, group)`` pairs always get distinct keys, and names are never
interpreted as patterns (the adapter only uses exact-name commands: no ``KEYS``, ``SCAN`` or ``PSUBSCRIBE``).
Members of the index sets are the raw names.

On a Redis Cluster (``cluster=True``) every key and channel of one group carries a hash tag,
``P i:{<n>:<stream>:<group>}``, so they share one hash slot and a group's scripts stay single-slot; the tag may end
early when a name holds ``}``, but it is the same for every key of the group, so they still share their slot.
Keys of engines (leases, announcements, the engines' presence lists) all carry the tag ``{engines}``
(``P {engines}presence:engines``...), so the scripts that sweep them stay single-slot too. The prefix holds no
braces there (config refuses them). The stream index ``g:`` and ``streams`` are single keys, kept by the adapter
right after the group's write (``redis_index.py``) instead of inside the write's script.
"""

from __future__ import annotations

__all__ = ["RedisKeys", "decode_name", "encode_name"]


def encode_name(name: str) -> bytes:
    """A name as stored in Redis (UTF-8; lone surrogates survive the round trip)."""
    return name.encode("utf-8", "surrogatepass")


def decode_name(raw: bytes) -> str:
    """Inverse of ``encode_name``."""
    return raw.decode("utf-8", "surrogatepass")


class RedisKeys:
    """Key and channel names of one deployment.

    Args:
        prefix: prepended to every key and channel, so deployments sharing one Redis never meet.
    """

    __slots__ = ("_engines", "_prefix", "cluster", "cluster_engines", "cluster_guards", "cluster_notices",
                 "presence_engines", "presence_sweeps", "streams")

    def __init__(self, prefix: str, *, cluster: bool = False) -> None:
        self.cluster = cluster
        self._prefix = encode_name(prefix)
        self._engines = self._prefix + (b"{engines}" if cluster else b"")
        self.streams = self._prefix + b"streams"
        self.presence_engines = self._engines + b"presence:engines"
        self.presence_sweeps = self._engines + b"presence:sweeps"
        self.cluster_engines = self._engines + b"cluster:engines"
        self.cluster_guards = self._engines + b"cg"
        self.cluster_notices = self._engines + b"cn"

    @property
    def prefix(self) -> bytes:
        """The deployment's prefix (presence scripts rebuild a group's keys from ``group_suffix``)."""
        return self._prefix

    @property
    def engines_prefix(self) -> bytes:
        """What precedes the kind in every key of an engine (the prefix, plus ``{engines}`` on a cluster)."""
        return self._engines

    def group_suffix(self, stream: str, group: str) -> bytes:
        """``<n>:<stream>:<group>`` (``{...}`` on a cluster): what follows the kind in every per-group key."""
        raw = encode_name(stream)
        if self.cluster:
            return b"{%d:%s:%s}" % (len(raw), raw, encode_name(group))
        return b"%d:%s:%s" % (len(raw), raw, encode_name(group))

    def presence_members(self, stream: str, group: str) -> bytes:
        """The hash of a group's members, every engine's."""
        return self._group_key(b"pm:", stream, group)

    def presence_seq(self, stream: str, group: str) -> bytes:
        """The counter numbering a group's presence changes."""
        return self._group_key(b"ps:", stream, group)

    def presence_channel(self, stream: str, group: str) -> bytes:
        """The pub/sub channel carrying a group's presence changes."""
        return self._group_key(b"pc:", stream, group)

    def presence_owners(self, stream: str, group: str) -> bytes:
        """The hash naming the engine that holds each member of a group (Redis Cluster: sweeps check it)."""
        return self._group_key(b"po:", stream, group)

    def presence_group_keys(self, suffix: bytes) -> list[bytes]:
        """Members, seq, owners and channel of the group with that ``group_suffix`` (as engines' lists name it)."""
        return [self._prefix + kind + suffix for kind in (b"pm:", b"ps:", b"po:", b"pc:")]

    def presence_engine(self, engine_id: str) -> bytes:
        """The hash listing one engine's members (so a dead engine's members are found without a scan)."""
        return self._engines + b"pe:" + encode_name(engine_id)

    def presence_sweep(self, engine_id: str) -> bytes:
        """The hash of a claimed engine's members still to remove (Redis Cluster: the sweep's work list)."""
        return self._engines + b"pz:" + encode_name(engine_id)

    def cluster_announcement(self, engine_id: str) -> bytes:
        """What one engine serves (functions, triggers), renewed with its lease."""
        return self._engines + b"ca:" + encode_name(engine_id)

    def cluster_channel(self, engine_id: str) -> bytes:
        """The channel carrying routed calls to one engine and the answers to its own routed calls."""
        return self._engines + b"cx:" + encode_name(engine_id)

    def items(self, stream: str, group: str) -> bytes:
        """The hash holding a group's items."""
        return self._group_key(b"i:", stream, group)

    def order(self, stream: str, group: str) -> bytes:
        """The sorted set ranking a group's items by first creation."""
        return self._group_key(b"o:", stream, group)

    def channel(self, stream: str, group: str) -> bytes:
        """The pub/sub channel carrying a group's events."""
        return self._group_key(b"e:", stream, group)

    def position(self, stream: str, group: str) -> bytes:
        """The hash holding a group's epoch and last offset."""
        return self._group_key(b"p:", stream, group)

    def log(self, stream: str, group: str) -> bytes:
        """The list holding a group's recent events, oldest first."""
        return self._group_key(b"l:", stream, group)

    def groups(self, stream: str) -> bytes:
        """The sorted set of a stream's non-empty groups, by first creation."""
        return self._prefix + b"g:" + encode_name(stream)

    def group_keys(self, stream: str, group: str) -> list[bytes]:
        """The keys a write script touches, in the order the scripts expect them: the group's own four, then (on a
        single server, where one script may touch them all) the stream's group index and the streams set."""
        own = [self.items(stream, group), self.order(stream, group), self.position(stream, group),
               self.log(stream, group)]
        return own if self.cluster else [*own, self.groups(stream), self.streams]

    def _group_key(self, kind: bytes, stream: str, group: str) -> bytes:
        return self._prefix + kind + self.group_suffix(stream, group)
