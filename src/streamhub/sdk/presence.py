"""Who is in a group, as the SDK sees it: typed members and the list a presence subscription keeps current.

The engine sends a presence subscription a presence ``sync`` (the whole list) after each join's ``sync``, then
``join`` / ``leave`` events. ``Members`` folds them: a sync replaces the list (after a reconnect the engine sends a
fresh one, so nothing from before the break survives), a join adds or replaces one connection, a leave removes
it. See docs/protocol.md, *Presence*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Members", "PresenceAnswer", "PresenceMember", "answer_from_wire"]


@dataclass(frozen=True, slots=True)
class PresenceMember:
    """One client connection in a group: its subscriptions there, when it came, and its ``info``.

    ``info`` is the ``presence`` field of that connection's auth context (None without one).
    """

    connection_id: str
    subscription_ids: tuple[str, ...]
    item_ids: tuple[str | None, ...]
    joined_at: int
    info: Any = None

    @classmethod
    def from_wire(cls, raw: Any) -> PresenceMember | None:
        """The MEMBER object of a presence frame, or None if it is malformed."""
        if not isinstance(raw, dict) or not isinstance(raw.get("connection_id"), str):
            return None
        subs, items, joined = raw.get("subscription_ids"), raw.get("item_ids"), raw.get("joined_at")
        return cls(raw["connection_id"], tuple(subs) if isinstance(subs, list) else (),
                   tuple(items) if isinstance(items, list) else (),
                   joined if isinstance(joined, int) else 0, raw.get("info"))


@dataclass(frozen=True, slots=True)
class PresenceAnswer:
    """The answer to ``StreamClient.presence``: up to the engine's limit of members, and the exact count."""

    members: list[PresenceMember]
    count: int
    truncated: bool = False


class Members:
    """The members of a presence subscription's group, kept current from its presence frames."""

    def __init__(self) -> None:
        self._by_connection: dict[str, PresenceMember] = {}
        self.count = 0  # exact, even when the engine cut the list (``truncated``)
        self.synced = False  # a presence sync arrived

    def list(self) -> list[PresenceMember]:
        """Members, oldest first (in the order the engine listed them when they joined in the same millisecond)."""
        return sorted(self._by_connection.values(), key=lambda m: m.joined_at)

    def apply(self, body: dict[str, Any]) -> None:
        """Fold one presence event body (``{"type": "presence", "action": ...}``)."""
        action = body.get("action")
        if action == "sync":
            members = [m for m in map(PresenceMember.from_wire, body.get("members") or []) if m is not None]
            self._by_connection = {m.connection_id: m for m in members}
            count = body.get("count")
            self.count = count if isinstance(count, int) else len(members)
            self.synced = True
            return
        member = PresenceMember.from_wire(body.get("member"))
        if member is None:
            return
        if action == "join":
            if member.connection_id not in self._by_connection:
                self.count += 1
            self._by_connection[member.connection_id] = member
        elif action == "leave" and self._by_connection.pop(member.connection_id, None) is not None:
            self.count -= 1
        elif action == "leave":
            self.count = max(self.count - 1, len(self._by_connection))  # one beyond a truncated list left


def answer_from_wire(message: dict[str, Any]) -> PresenceAnswer:
    """A ``presence`` answer frame as a ``PresenceAnswer``."""
    members = [m for m in map(PresenceMember.from_wire, message.get("members") or []) if m is not None]
    count = message.get("count")
    return PresenceAnswer(members, count if isinstance(count, int) else len(members),
                          message.get("truncated") is True)
