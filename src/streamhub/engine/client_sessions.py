"""What happens when a client joins, leaves or disconnects: join/leave triggers, snapshot or replay, hub.

Order on join: the per-connection subscription cap -> join guards (``join_guards``: any refusal, or any guard
that cannot judge, refuses with a reason) -> register with the hub (events start
buffering) -> the connection becomes a member of the group (``engine.presence``) -> read the snapshot and its
position (or, for a join that carries a position, the missed events) -> send ``sync`` (+ replayed events) ->
release the buffered events the client does not have yet -> for a presence join, its presence ``sync``. So the
client sees every change exactly once, including those made while its snapshot was read. A resync (the adapter
reports that a group's events may have been lost) sends every subscription of the group a fresh snapshot the same
way, without triggers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.presence import MemoryPresence
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.positions import Position
from streamhub.core.triggers import LEAVE, TriggerIndex
from streamhub.engine.hub import Hold, Hub, Subscription
from streamhub.engine.join_guards import JoinGuards
from streamhub.engine.outbox import Outbox
from streamhub.engine.presence import DEFAULT_MAX_INFO_BYTES, Presence, presence_info
from streamhub.errors import InvalidRequest, StreamhubError
from streamhub.protocol.client_messages import (
    PresenceQuery,
    SubscriptionData,
    error_frame,
    presence_answer,
    recovered_wrapper,
    sync_wrapper,
    unauthorized_wrapper,
)
from streamhub.protocol.client_session import ClientSession
from streamhub.protocol.codec import encode, text_frame

__all__ = ["ClientConnection", "ClientSessions"]

log = logging.getLogger(__name__)

Call = Callable[[str, Any, float], Awaitable[Any]]


class ClientConnection:
    """Engine-side state of one client WebSocket.

    Args:
        max_subscriptions: open subscriptions this connection may hold (None: no cap); a join beyond it gets
            an error frame ``too_many_subscriptions``.
    """

    def __init__(self, connection_id: str, outbox: Outbox, context: Any, max_subscriptions: int | None = None
                 ) -> None:
        self.connection_id = connection_id
        self.outbox = outbox
        self.context = context  # what the auth function returned; passed to join/leave triggers
        self.max_subscriptions = max_subscriptions
        self.session = ClientSession()
        self._info: tuple[Any] | None = None

    def presence_info(self, max_bytes: int) -> Any:
        """The ``presence`` field of the auth context, checked once per connection (one WARNING if too large)."""
        if self._info is None:
            self._info = (presence_info(self.context, max_bytes, self.connection_id),)
        return self._info[0]

    def send(self, message: dict[str, Any]) -> None:
        """Queue one JSON message to this client."""
        self.outbox.put(text_frame(encode(message)))


class ClientSessions:
    """Joins, leaves and disconnects of every client connection."""

    def __init__(self, hub: Hub, adapter: StreamAdapter, triggers: TriggerIndex, call: Call,
                 join_timeout: float, metrics: Metrics = NULL_METRICS, presence: Presence | None = None,
                 max_info_bytes: int = DEFAULT_MAX_INFO_BYTES) -> None:
        self._hub = hub
        self.presence = presence or Presence(MemoryPresence())
        self._max_info = max_info_bytes
        self._metrics = metrics
        self._adapter = adapter
        self._triggers = triggers
        self._call = call
        self._timeout = join_timeout
        self._guards = JoinGuards(triggers, call, join_timeout)
        self._resyncs: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._watching: dict[tuple[str, str], asyncio.Future[None]] = {}  # watch() calls still in flight

    async def join(self, conn: ClientConnection, sub: SubscriptionData) -> None:
        """Subscribe ``conn`` unless over its cap or a join guard refuses; sends ``sync`` then live events."""
        if _over_cap(conn, sub):
            self._metrics.join_refused("cap")
            log.debug("client %s: join of %s/%s refused: subscription cap", conn.connection_id, sub.streamName,
                      sub.groupId)
            conn.send(error_frame(_too_many(conn, sub), sub.subscriptionId))
            return
        refusal = await self._guards.refusal(sub.streamName, sub.groupId, _payload(conn, sub))
        if refusal is not None:
            self._metrics.join_refused(refusal)
            conn.send(unauthorized_wrapper(sub, refusal))
            return
        replaced = conn.session.opened(sub)
        if replaced is not None:
            await self._unregister(conn, replaced)
        live = Subscription(conn.outbox, sub.id, sub, conn.connection_id)
        held = live.buffer
        is_first = self._hub.add((conn.connection_id, sub.subscriptionId), sub.streamName, sub.groupId, live)
        await self._watched(sub.streamName, sub.groupId, is_first)
        await self.presence.opened(conn.connection_id, conn.presence_info(self._max_info), sub, live)
        try:
            first, floor = await self._catch_up(sub)
        except StreamhubError as exc:
            log.warning("snapshot of %s/%s failed: %s", sub.streamName, sub.groupId, exc)
            self._metrics.join_refused("error")
            conn.session.closed(sub.subscriptionId)
            await self._unregister(conn, sub)
            conn.send(error_frame(exc, sub.subscriptionId))
            return
        self._metrics.joined()
        self._metrics.sent("stream", sum(len(frame) for frame in first))
        if await live.go_live(first, floor, held):
            await self.presence.synced(live)
        log.debug("client %s joined %s/%s (subscription %s)", conn.connection_id, sub.streamName, sub.groupId,
                  sub.subscriptionId)

    async def presence_request(self, conn: ClientConnection, query: PresenceQuery) -> None:
        """Answer who is in a group; fail closed: only a subscriber of the group, or whom every join guard admits."""
        stream, group = query.streamName, query.groupId
        subscribed = any(sub.streamName == stream and sub.groupId == group
                         for sub in conn.session.subscriptions.values())
        if not subscribed:
            payload = {"subscription_id": query.requestId, "stream_name": stream, "group_id": group, "id": None,
                       "context": conn.context, "connection_id": conn.connection_id}
            refusal = await self._guards.refusal(stream, group, payload)
            if refusal is not None:
                error = InvalidRequest(f"presence of {stream}/{group} refused ({refusal}): join it first, or be "
                                       "admitted by its join guards", code="unauthorized")
                frame = error_frame(error, request_id=query.requestId)
                frame["error"]["reason"] = refusal
                conn.send(frame)
                return
        roster = await self.presence.roster(stream, group)
        conn.send(presence_answer(query, [member.to_wire() for member in roster.members], roster.count))

    async def leave(self, conn: ClientConnection, sub: SubscriptionData) -> None:
        """Fire leave triggers, then unsubscribe (a leave for an unknown id still fires them)."""
        await self._fire_leave(conn, sub)
        open_sub = conn.session.closed(sub.subscriptionId)
        if open_sub is not None:
            self._metrics.left()
            await self._unregister(conn, open_sub)
            log.debug("client %s left %s/%s (subscription %s)", conn.connection_id, open_sub.streamName,
                      open_sub.groupId, open_sub.subscriptionId)

    async def disconnect(self, conn: ClientConnection) -> None:
        """Release every subscription of a closed connection, one leave trigger call each."""
        conn.outbox.close()
        remaining = list(conn.session.subscriptions.values())
        conn.session.subscriptions.clear()
        for sub in remaining:
            self._metrics.left()
            await self._unregister(conn, sub)
        for sub in remaining:
            await self._fire_leave(conn, sub)

    def resync(self, stream: str, group: str) -> None:
        """Give every subscription of the group a fresh ``sync``: the adapter may have lost some of its events.

        Called synchronously before the adapter delivers the group's next event, so that event is held back
        until the new snapshot (read after this call) has been sent.
        """
        held = [(sub, sub.hold()) for sub in self._hub.subscriptions(stream, group) if sub.data is not None]
        if not held:
            return
        key = (stream, group)
        previous = self._resyncs.pop(key, None)
        if previous is not None:
            previous.cancel()  # its snapshots may predate the gap; the new holds supersede them anyway
        task = asyncio.create_task(self._resend(key, held))
        self._resyncs[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    async def close(self) -> None:
        """Stop pending resyncs (their subscribers are going away with the engine)."""
        for task in list(self._resyncs.values()):
            task.cancel()
        self._resyncs.clear()

    # Private

    async def _watched(self, stream: str, group: str, first: bool) -> None:
        """Return once the adapter delivers the group's events: a snapshot read earlier could miss some.

        The first subscriber of a group starts the watch; later ones wait for it if it is still in flight.
        """
        key = (stream, group)
        if not first:
            pending = self._watching.get(key)
            if pending is not None:
                await asyncio.shield(pending)
            return
        watching = asyncio.ensure_future(self._adapter.watch(stream, group))
        self._watching[key] = watching
        try:
            await asyncio.shield(watching)
        finally:
            if self._watching.get(key) is watching:
                del self._watching[key]

    async def _resend(self, group: tuple[str, str], held: list[tuple[Subscription, Hold]]) -> None:
        """Read snapshots until the store answers (it may still be recovering), then release each subscription."""
        delay = 0.05
        while True:
            try:
                snapshots = await self._resync_snapshots(held)
                break
            except StreamhubError as exc:
                log.warning("resync of %s/%s failed, retrying in %.2fs: %s", group[0], group[1], delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        for (sub, token), (state, position) in zip(held, snapshots, strict=True):
            assert sub.data is not None
            if await sub.go_live([text_frame(encode(sync_wrapper(sub.data, state, position)))], position.offset,
                                 token):
                await self.presence.synced(sub)

    def _forget(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._resyncs.get(key) is task:
            del self._resyncs[key]

    async def _resync_snapshots(self, held: list[tuple[Subscription, Hold]]) -> list[tuple[Any, Position]]:
        """One read per distinct snapshot (the group's items once, each watched item once)."""
        cache: dict[str | None, tuple[Any, Position]] = {}
        for sub, _ in held:
            data = sub.data
            assert data is not None
            if data.id not in cache:
                cache[data.id] = await self._adapter.snapshot(data.streamName, data.groupId, data.id)
        return [cache[sub.item] for sub, _ in held]

    async def _fire_leave(self, conn: ClientConnection, sub: SubscriptionData) -> None:
        for trigger in self._triggers.for_subscription(LEAVE, sub.streamName, sub.groupId):
            try:
                await self._call(trigger.function_id, _payload(conn, sub), self._timeout)
            except Exception as exc:
                self._metrics.trigger_ran(LEAVE, False)
                log.warning("leave trigger %s failed: %s", trigger.function_id, exc)
            else:
                self._metrics.trigger_ran(LEAVE, True)

    async def _catch_up(self, sub: SubscriptionData) -> tuple[list[bytes], int]:
        """The frames that bring the client up to date, and the offset they reach."""
        if sub.position is not None:
            since = Position(sub.position.epoch, sub.position.offset)
            replay = await self._adapter.replay(sub.streamName, sub.groupId, since)
            self._metrics.resumed(replay is not None)
            if replay is not None:
                events, reached = replay
                frames = [text_frame(encode(recovered_wrapper(sub, reached)))]
                frames += [text_frame(encode(e.to_wire())) for e in events if sub.id is None or e.item == sub.id]
                return frames, reached.offset
        state, position = await self._adapter.snapshot(sub.streamName, sub.groupId, sub.id)
        return [text_frame(encode(sync_wrapper(sub, state, position)))], position.offset

    async def _unregister(self, conn: ClientConnection, sub: SubscriptionData) -> None:
        if self._hub.remove((conn.connection_id, sub.subscriptionId), sub.streamName, sub.groupId):
            await self._adapter.unwatch(sub.streamName, sub.groupId)
        await self.presence.closed(conn.connection_id, sub)


def _over_cap(conn: ClientConnection, sub: SubscriptionData) -> bool:
    """True if this join would open one subscription more than allowed (re-joining an open id replaces it)."""
    cap = conn.max_subscriptions
    open_subs = conn.session.subscriptions
    return cap is not None and sub.subscriptionId not in open_subs and len(open_subs) >= cap


def _too_many(conn: ClientConnection, sub: SubscriptionData) -> InvalidRequest:
    return InvalidRequest(
        f"join {sub.subscriptionId!r} refused: this connection already has {len(conn.session.subscriptions)} "
        f"subscriptions, the most max_subscriptions_per_connection ({conn.max_subscriptions}) allows; "
        "leave one first", code="too_many_subscriptions")


def _payload(conn: ClientConnection, sub: SubscriptionData) -> dict[str, Any]:
    return {
        "subscription_id": sub.subscriptionId,
        "stream_name": sub.streamName,
        "group_id": sub.groupId,
        "id": sub.id,
        "context": conn.context,
        "connection_id": conn.connection_id,
    }
