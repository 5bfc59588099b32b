"""What happens when a client joins, leaves or disconnects: join/leave triggers, snapshot or replay, hub.

Order on join: join triggers (any ``{"unauthorized": true}`` refuses) -> register with the hub (events start
buffering) -> read the snapshot and its position (or, for a join that carries a position, the missed events) ->
send ``sync`` (+ replayed events) -> release the buffered events the client does not have yet. So the client
sees every change exactly once, including those made while its snapshot was read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streamhub.adapters.base import StreamAdapter
from streamhub.core.positions import Position
from streamhub.core.triggers import JOIN, LEAVE, TriggerIndex
from streamhub.engine.hub import Hub, Subscription
from streamhub.engine.outbox import Outbox
from streamhub.errors import StreamhubError
from streamhub.protocol.client_messages import (
    SubscriptionData,
    error_frame,
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
    """Engine-side state of one client WebSocket."""

    def __init__(self, connection_id: str, outbox: Outbox, context: Any) -> None:
        self.connection_id = connection_id
        self.outbox = outbox
        self.context = context  # what the auth function returned; passed to join/leave triggers
        self.session = ClientSession()

    def send(self, message: dict[str, Any]) -> None:
        """Queue one JSON message to this client."""
        self.outbox.put(text_frame(encode(message)))


class ClientSessions:
    """Joins, leaves and disconnects of every client connection."""

    def __init__(self, hub: Hub, adapter: StreamAdapter, triggers: TriggerIndex, call: Call,
                 join_timeout: float) -> None:
        self._hub = hub
        self._adapter = adapter
        self._triggers = triggers
        self._call = call
        self._timeout = join_timeout

    async def join(self, conn: ClientConnection, sub: SubscriptionData) -> None:
        """Subscribe ``conn`` unless a join trigger refuses; sends ``sync`` then live events."""
        if await self._refused(conn, sub):
            conn.send(unauthorized_wrapper(sub))
            return
        replaced = conn.session.opened(sub)
        if replaced is not None:
            await self._unregister(conn, replaced)
        live = Subscription(conn.outbox, sub.id)
        if self._hub.add((conn.connection_id, sub.subscriptionId), sub.streamName, sub.groupId, live):
            await self._adapter.watch(sub.streamName, sub.groupId)
        try:
            first, floor = await self._catch_up(sub)
        except StreamhubError as exc:
            log.warning("snapshot of %s/%s failed: %s", sub.streamName, sub.groupId, exc)
            conn.session.closed(sub.subscriptionId)
            await self._unregister(conn, sub)
            conn.send(error_frame(exc, sub.subscriptionId))
            return
        await live.go_live(first, floor)

    async def leave(self, conn: ClientConnection, sub: SubscriptionData) -> None:
        """Fire leave triggers, then unsubscribe (a leave for an unknown id still fires them)."""
        await self._fire_leave(conn, sub)
        open_sub = conn.session.closed(sub.subscriptionId)
        if open_sub is not None:
            await self._unregister(conn, open_sub)

    async def disconnect(self, conn: ClientConnection) -> None:
        """Release every subscription of a closed connection, one leave trigger call each."""
        conn.outbox.close()
        remaining = list(conn.session.subscriptions.values())
        conn.session.subscriptions.clear()
        for sub in remaining:
            await self._unregister(conn, sub)
        for sub in remaining:
            await self._fire_leave(conn, sub)

    # Private

    async def _refused(self, conn: ClientConnection, sub: SubscriptionData) -> bool:
        refused = False
        for trigger in self._triggers.for_subscription(JOIN, sub.streamName, sub.groupId):
            try:
                result = await self._call(trigger.function_id, _payload(conn, sub), self._timeout)
            except Exception as exc:
                log.warning("join trigger %s failed (join allowed): %s", trigger.function_id, exc)
                continue
            if isinstance(result, dict) and result.get("unauthorized") is True:
                refused = True
        return refused

    async def _fire_leave(self, conn: ClientConnection, sub: SubscriptionData) -> None:
        for trigger in self._triggers.for_subscription(LEAVE, sub.streamName, sub.groupId):
            try:
                await self._call(trigger.function_id, _payload(conn, sub), self._timeout)
            except Exception as exc:
                log.warning("leave trigger %s failed: %s", trigger.function_id, exc)

    async def _catch_up(self, sub: SubscriptionData) -> tuple[list[bytes], int]:
        """The frames that bring the client up to date, and the offset they reach."""
        if sub.position is not None:
            since = Position(sub.position.epoch, sub.position.offset)
            replay = await self._adapter.replay(sub.streamName, sub.groupId, since)
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


def _payload(conn: ClientConnection, sub: SubscriptionData) -> dict[str, Any]:
    return {
        "subscription_id": sub.subscriptionId,
        "stream_name": sub.streamName,
        "group_id": sub.groupId,
        "id": sub.id,
        "context": conn.context,
        "connection_id": conn.connection_id,
    }
