"""Who is in a group: the presence interface beside the store, and its in-process implementation.

Why its own interface: presence is not data. Members are client connections, not items; they take no change-log
offsets, are never persisted, and across engines they must disappear when their engine dies. So presence is a
small ``PresenceStore`` next to the ``StreamAdapter`` (the registry builds one for each adapter class):
``MemoryPresence`` for the embedded stores (memory and file: one engine), ``RedisPresence`` (``redis_presence``)
for engines sharing a Redis.

Contract every presence store keeps (``tests/adapters/test_presence_contract.py`` checks it against each one):

* A member is one client connection in one group (``Member``), keyed by its ``connection_id``. ``join`` adds it
  (an existing connection is replaced, without event), ``update`` replaces it without event (its subscriptions
  changed), ``leave`` removes it (an unknown connection: nothing happens).
* Every change of a group's membership is numbered with the group's next ``seq`` in the same atomic step that
  applies it. Each ``join``/``leave`` reaches the listener given to ``start`` once per engine watching the group,
  as a ``PresenceChange`` carrying the member as it was then, in ``seq`` order. Embedded stores deliver every
  group's changes; distributed ones only those of groups passed to ``watch``.
* ``members`` returns, as one consistent read, up to ``limit`` members of every engine, the exact count, and the
  ``seq`` it reflects: a change with a ``seq`` at or below it is already in the answer.
* A distributed store keeps each engine's members under a lease the engine renews (``ttl``); the members of an
  engine that stops renewing (killed) are removed by a surviving engine, with ``leave`` changes, within the lease,
  without scanning the keyspace. An engine that finds its members gone (Redis restarted, lease claimed while it
  was cut off) announces them again. Changes that may have been missed (the bus connection broke) are reported to
  ``on_gap`` for the group, like ``StreamAdapter``'s gaps; the engine then re-reads ``members``.
* ``join``, ``update`` and ``leave`` of a distributed store may raise ``AdapterError`` while the backend is
  unreachable; the store still records the engine's intent and brings the backend in line once it is back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

__all__ = [
    "JOIN",
    "LEAVE",
    "Member",
    "MemoryPresence",
    "PresenceChange",
    "PresenceGapListener",
    "PresenceListener",
    "PresenceStore",
    "Roster",
]

JOIN: Final = "join"
LEAVE: Final = "leave"


@dataclass(frozen=True, slots=True)
class Member:
    """One connection's presence in a group: its subscriptions there, when it came, and who it says it is."""

    connection_id: str
    subscription_ids: tuple[str, ...]
    item_ids: tuple[str | None, ...]
    joined_at: int
    info: Any = None

    def to_wire(self) -> dict[str, Any]:
        """The MEMBER object of the wire (docs/protocol.md, *Presence*)."""
        return {"connection_id": self.connection_id, "subscription_ids": list(self.subscription_ids),
                "item_ids": list(self.item_ids), "joined_at": self.joined_at, "info": self.info}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Member:
        """Inverse of ``to_wire`` (stores that ship members as JSON)."""
        return cls(wire["connection_id"], tuple(wire["subscription_ids"]), tuple(wire["item_ids"]),
                   int(wire["joined_at"]), wire.get("info"))


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A member joined or left ``stream/group``; ``seq`` numbers it within the group."""

    stream: str
    group: str
    action: str
    member: Member
    seq: int


@dataclass(frozen=True, slots=True)
class Roster:
    """An answer to ``members``: up to the limit, the exact count, and the ``seq`` it reflects."""

    members: list[Member]
    count: int
    seq: int

    @property
    def truncated(self) -> bool:
        return len(self.members) < self.count


PresenceListener = Callable[[PresenceChange], None]
"""Called synchronously with each change, in ``seq`` order per group; must not block."""

PresenceGapListener = Callable[[str, str], None]
"""Called with ``(stream, group)`` whose changes may have been missed, before any later change of it."""


class PresenceStore(Protocol):
    """Members of groups, shared by every engine of one deployment."""

    async def start(self, listener: PresenceListener, on_gap: PresenceGapListener | None = None) -> None:
        """Open the backend and begin delivering changes (gaps to ``on_gap``)."""

    async def close(self) -> None:
        """Withdraw this engine's members (if the backend outlives it) and release every resource."""

    async def join(self, stream: str, group: str, member: Member) -> None:
        """Add ``member`` and announce it (a connection already present is replaced silently)."""

    async def update(self, stream: str, group: str, member: Member) -> None:
        """Replace a present member without an event (its subscriptions changed)."""

    async def leave(self, stream: str, group: str, member: Member) -> None:
        """Remove the member with ``member.connection_id`` and announce ``member``."""

    async def members(self, stream: str, group: str, limit: int) -> Roster:
        """Up to ``limit`` members (oldest first where the backend can tell), the exact count and the seq."""

    async def count(self, stream: str, group: str) -> int:
        """How many members the group has."""

    async def watch(self, stream: str, group: str) -> None:
        """Start delivering this group's changes to this engine (a no-op for embedded stores)."""

    async def unwatch(self, stream: str, group: str) -> None:
        """Stop delivering this group's changes."""


class MemoryPresence:
    """Presence of one engine, in its memory (the memory and file stores: there is no other engine to tell)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], dict[str, Member]] = {}
        self._seqs: dict[tuple[str, str], int] = {}
        self._listener: PresenceListener | None = None

    async def start(self, listener: PresenceListener, on_gap: PresenceGapListener | None = None) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._groups.clear()
        self._seqs.clear()
        self._listener = None

    async def join(self, stream: str, group: str, member: Member) -> None:
        members = self._groups.setdefault((stream, group), {})
        present = member.connection_id in members
        members[member.connection_id] = member
        if not present:
            self._announce(stream, group, JOIN, member)

    async def update(self, stream: str, group: str, member: Member) -> None:
        members = self._groups.get((stream, group))
        if members is not None and member.connection_id in members:
            members[member.connection_id] = member

    async def leave(self, stream: str, group: str, member: Member) -> None:
        key = (stream, group)
        members = self._groups.get(key)
        if members is None or members.pop(member.connection_id, None) is None:
            return
        self._announce(stream, group, LEAVE, member)
        if not members:  # nobody can be watching it (a watcher is a member): forget its numbering too
            del self._groups[key]
            del self._seqs[key]

    async def members(self, stream: str, group: str, limit: int) -> Roster:
        members = self._groups.get((stream, group), {})
        return Roster(list(members.values())[:limit], len(members), self._seqs.get((stream, group), 0))

    async def count(self, stream: str, group: str) -> int:
        return len(self._groups.get((stream, group), {}))

    async def watch(self, stream: str, group: str) -> None:
        return None

    async def unwatch(self, stream: str, group: str) -> None:
        return None

    def _announce(self, stream: str, group: str, action: str, member: Member) -> None:
        seq = self._seqs.get((stream, group), 0) + 1
        self._seqs[(stream, group)] = seq
        if self._listener is not None:
            self._listener(PresenceChange(stream, group, action, member, seq))


_check: type[PresenceStore] = MemoryPresence
