"""Presence on the engine side: this engine's members, and the presence frames of its subscriptions.

A connection is a member of a group from its first subscription to the group (or to one of its items) until its
last one ends (leave, disconnect, a failed join). ``ClientSessions`` reports each opened and closed subscription
here; this module keeps the local members and tells the ``PresenceStore``, which announces joins and leaves to
every engine. Changes come back from the store (``_on_change``), are encoded once per group and go only to the
subscriptions that joined with ``"presence": true`` (their ``PresenceView``): ordinary subscriptions and
``Hub.dispatch`` never see them.

Order: a presence subscription gets its presence ``sync`` after its join's ``sync`` (``synced``, called once the
join, or the resync that superseded it, has gone live); changes arriving before that are held and those the
presence sync already covers (by ``seq``) are dropped. A gap reported by the store gives every presence
subscription of the group a fresh presence sync the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

from streamhub.adapters.presence import Member, PresenceChange, PresenceStore, Roster
from streamhub.core.model import now_ms
from streamhub.engine.hub import PresenceView, Subscription
from streamhub.errors import StreamhubError
from streamhub.protocol.client_messages import SubscriptionData, presence_event, presence_sync_wrapper
from streamhub.protocol.codec import encode, text_frame

__all__ = ["DEFAULT_MAX_INFO_BYTES", "DEFAULT_MAX_MEMBERS", "LocalMember", "Presence", "presence_info"]

log = logging.getLogger(__name__)

DEFAULT_MAX_MEMBERS = 1000
DEFAULT_MAX_INFO_BYTES = 1024
_RETRY_MAX = 2.0  # seconds between attempts to read a presence sync while the store cannot answer

GroupKey = tuple[str, str]


class LocalMember:
    """One local connection in one group: its open subscriptions there (id -> item)."""

    __slots__ = ("connection_id", "info", "joined_at", "subscriptions")

    def __init__(self, connection_id: str, info: Any) -> None:
        self.connection_id = connection_id
        self.info = info
        self.joined_at = now_ms()
        self.subscriptions: dict[str, str | None] = {}

    def member(self) -> Member:
        return Member(self.connection_id, tuple(self.subscriptions), tuple(self.subscriptions.values()),
                      self.joined_at, self.info)


def presence_info(context: Any, max_bytes: int, connection_id: str) -> Any:
    """The ``presence`` field of a dict auth context (never the rest of it), or None if absent or too large."""
    if not isinstance(context, dict):
        return None
    info = context.get("presence")
    if info is None:
        return None
    size = len(encode(info))
    if size > max_bytes:
        log.warning("connection %s: presence info of %d bytes is over max_presence_info_bytes (%d); "
                    "its members show info null", connection_id, size, max_bytes)
        return None
    return info


class Presence:
    """Local members per group, presence subscriptions per group, and the store between engines.

    Args:
        store: where members of every engine are kept and announced.
        max_members: members listed in a presence sync or answer (the count stays exact).
    """

    def __init__(self, store: PresenceStore, *, max_members: int = DEFAULT_MAX_MEMBERS) -> None:
        self.store = store
        self.max_members = max_members
        self._members: dict[GroupKey, dict[str, LocalMember]] = {}
        self._viewers: dict[GroupKey, dict[Hashable, Subscription]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.store.start(self._on_change, self._on_gap)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.store.close()

    # Membership

    async def opened(self, connection_id: str, info: Any, sub: SubscriptionData, live: Subscription) -> None:
        """A subscription of ``connection_id`` was registered: the connection joins the group if it was not in it."""
        key = (sub.streamName, sub.groupId)
        if sub.presence:
            live.presence = live.presence or PresenceView()
            viewers = self._viewers.setdefault(key, {})
            first = not viewers
            viewers[(connection_id, sub.subscriptionId)] = live
            if first:
                await self._quietly("watching", self.store.watch(*key), key)
        members = self._members.setdefault(key, {})
        local = members.get(connection_id)
        fresh = local is None
        if local is None:
            local = members[connection_id] = LocalMember(connection_id, info)
        local.subscriptions[sub.subscriptionId] = sub.id
        change = self.store.join if fresh else self.store.update
        await self._quietly("announcing a member of", change(*key, local.member()), key)

    async def closed(self, connection_id: str, sub: SubscriptionData) -> None:
        """A subscription ended: the connection leaves the group with its last one."""
        key = (sub.streamName, sub.groupId)
        viewers = self._viewers.get(key)
        if viewers is not None and viewers.pop((connection_id, sub.subscriptionId), None) is not None \
                and not viewers:
            del self._viewers[key]
            await self._quietly("unwatching", self.store.unwatch(*key), key)
        members = self._members.get(key)
        local = members.get(connection_id) if members is not None else None
        if members is None or local is None or sub.subscriptionId not in local.subscriptions:
            return
        before = local.member()  # a leave shows the member as it was
        del local.subscriptions[sub.subscriptionId]
        if local.subscriptions:
            await self._quietly("updating a member of", self.store.update(*key, local.member()), key)
            return
        del members[connection_id]
        if not members:
            del self._members[key]
        await self._quietly("withdrawing a member of", self.store.leave(*key, before), key)

    # Reads

    async def roster(self, stream: str, group: str) -> Roster:
        """Members of every engine (up to ``max_members``) and the exact count."""
        return await self.store.members(stream, group, self.max_members)

    async def count(self, stream: str, group: str) -> int:
        return await self.store.count(stream, group)

    def local_count(self) -> int:
        """Local members of every group (metrics, tests)."""
        return sum(len(members) for members in self._members.values())

    # Presence frames

    async def synced(self, live: Subscription) -> None:
        """The join's ``sync`` is out: send the presence ``sync`` (once; gaps send their own)."""
        view = live.presence
        if view is None or view.ready:
            return
        view.ready = True
        await self._send_sync(live)

    async def _send_sync(self, live: Subscription) -> None:
        """Read the members and send them, then the changes held meanwhile; retried while the store is down."""
        view, data = live.presence, live.data
        assert view is not None and data is not None
        token = view.pending if view.pending is not None else view.hold()
        delay = 0.05
        while True:
            try:
                roster = await self.roster(data.streamName, data.groupId)
                break
            except StreamhubError as exc:
                if view.pending is not token or live.outbox.closed:
                    return
                log.warning("presence sync of %s/%s failed, retrying in %.2fs: %s", data.streamName,
                            data.groupId, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        members = [member.to_wire() for member in roster.members]
        frame = text_frame(encode(presence_sync_wrapper(data, members, roster.count)))
        view.go_live(live.outbox, frame, roster.seq, token)

    def _on_change(self, change: PresenceChange) -> None:
        """A member joined or left (any engine): one frame for every presence subscription of the group."""
        viewers = self._viewers.get((change.stream, change.group))
        if not viewers:
            return
        frame = text_frame(encode(presence_event(change.stream, change.group, change.action,
                                                 change.member.to_wire())))
        for live in viewers.values():
            view = live.presence
            if view is not None:
                view.deliver(live.outbox, frame, change.seq)

    def _on_gap(self, stream: str, group: str) -> None:
        """Changes of the group may have been missed: every presence subscription gets a fresh presence sync."""
        for live in list(self._viewers.get((stream, group), {}).values()):
            view = live.presence
            if view is None:
                continue
            view.hold()
            if view.ready:
                self._spawn(self._send_sync(live))

    # Private

    async def _quietly(self, what: str, call: Any, key: GroupKey) -> None:
        """Presence must not fail a join: a store that cannot answer now catches up by itself (contract)."""
        try:
            await call
        except StreamhubError as exc:
            log.warning("presence: %s %s/%s failed: %s", what, key[0], key[1], exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

