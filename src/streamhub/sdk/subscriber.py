"""Subscribing to streams from Python: ``StreamClient.subscribe`` over the stream port (default 3112).

Subscriptions share one WebSocket. The engine does not echo subscription ids, and it sends one copy of an event
per matching subscription, so two overlapping subscriptions (a group and one of its items) on one socket could
not be told apart: such a subscription gets a socket of its own ("lanes"). On each lane every frame therefore
belongs to exactly one subscription. After a reconnect (or after its consumer fell behind) a subscription is
joined again with the position it reached (``positions.Cursor``): the engine replays exactly the events it missed,
or sends a fresh ``sync`` when it cannot; frames between the join and its ``sync`` are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any

import aiohttp

from streamhub.errors import InvalidRequest
from streamhub.protocol.client_session import ClientSession
from streamhub.protocol.codec import decode, encode
from streamhub.sdk.credentials import redact
from streamhub.sdk.errors import SubscriptionError
from streamhub.sdk.events import StreamEvent
from streamhub.sdk.link import Backoff, Link, is_refusal, refusal_status
from streamhub.sdk.presence import PresenceAnswer, answer_from_wire
from streamhub.sdk.session import SessionHolder
from streamhub.sdk.subscription import Callback, Subscription

__all__ = ["StreamClient"]

log = logging.getLogger(__name__)

Address = tuple[str, str, str | None]
_FIRST_FRAMES = ("sync", "unauthorized")
_JOIN_RETRY_DELAY = 0.5  # seconds before joining again when the engine could not answer a join
_TOO_MANY = "too_many_subscriptions"  # the engine's per-connection cap: this join fails instead of retrying


class StreamClient:
    """Subscriptions to one engine's stream port.

    Args:
        url: the stream port, e.g. ``ws://127.0.0.1:3112/`` or ``wss://...`` (query strings such as ``?token=``
            reach the auth function; they never appear in the SDK's messages or logs).
        headers: sent with the upgrade (e.g. ``Authorization``); protocols: WebSocket subprotocols to offer.
        max_queue: events a subscription may hold for a slow consumer; beyond that it stops taking events and is
            re-joined from its position once the consumer has caught up.
        ssl: for ``wss://``: an ``SSLContext`` (e.g. trusting a private CA), True (system CAs) or False (no check).
    """

    def __init__(self, url: str = "ws://127.0.0.1:3112/", *, headers: Mapping[str, str] | None = None,
                 protocols: Sequence[str] = (), backoff: Backoff | None = None, heartbeat: float | None = 20.0,
                 max_queue: int = 10_000, sessions: SessionHolder | None = None,
                 ssl: SSLContext | bool = True) -> None:
        self.url = url
        self.max_queue = max_queue
        self._options: dict[str, Any] = {"headers": dict(headers or {}), "protocols": tuple(protocols),
                                         "backoff": backoff or Backoff(), "heartbeat": heartbeat, "ssl": ssl}
        self._own_sessions = sessions is None
        self._sessions = sessions or SessionHolder()
        self._lanes: list[_Lane] = []
        self._closing: set[asyncio.Future[None]] = set()  # lanes closing in the background
        self._validator = ClientSession()
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}  # presence requests awaiting answers

    async def __aenter__(self) -> StreamClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def subscribe(self, stream_name: str, group_id: str, callback: Callback | None = None, *,
                  item_id: str | None = None, max_queue: int | None = None, presence: bool = False) -> Subscription:
        """Subscribe to a group (or one item); events go to ``callback`` or, without one, to ``async for``.

        With ``presence=True`` presence events come too and ``subscription.members`` lists who is in the group.

        Raises:
            InvalidRequest: a name is empty, too long or holds control characters (the message names it).
        """
        sub = Subscription(stream_name, group_id, item_id, callback, max_queue or self.max_queue, self._left,
                           presence)
        try:
            self._validator.receive(encode({"type": "join", "data": sub.join_data()}))
        except InvalidRequest:
            sub.unsubscribe()
            raise
        lane = next((lane for lane in self._lanes if not lane.overlaps(sub)), None)
        if lane is None:
            lane = _Lane(self, self._sessions.get(), self._options)
            self._lanes.append(lane)
        lane.add(sub)
        return sub

    async def presence(self, stream_name: str, group_id: str, *, timeout: float = 10.0) -> PresenceAnswer:
        """Who is in a group right now, without subscribing (the stream port's ``presence`` request).

        Raises:
            SubscriptionError: refused (``code == "unauthorized"``, ``reason`` from the join guards: the engine
                answers only a connection subscribed to the group or admitted by its join guards), failed, or no
                answer within ``timeout``.
            InvalidRequest: a name is invalid.
        """
        request_id = str(uuid.uuid4())
        self._validator.receive(encode({"type": "presence", "data": {
            "requestId": request_id, "streamName": stream_name, "groupId": group_id}}))
        if not self._lanes:
            self._lanes.append(_Lane(self, self._sessions.get(), self._options))
        lane = self._lanes[0]
        lane.link.start()
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = answer
        try:
            async with asyncio.timeout(timeout):
                if not await lane.link.wait_ready(timeout):
                    raise SubscriptionError(f"presence of {stream_name}/{group_id}: not connected to "
                                            f"{lane.link.safe_url}")
                await lane.link.send(encode({"type": "presence", "data": {
                    "requestId": request_id, "streamName": stream_name, "groupId": group_id}}))
                message = await answer
        except TimeoutError:
            raise SubscriptionError(f"presence of {stream_name}/{group_id}: no answer within {timeout:g} s") from None
        finally:
            self._requests.pop(request_id, None)
        return _presence_answer(message, stream_name, group_id)

    async def close(self) -> None:
        """Leave every subscription and close the sockets."""
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.end_all()
            await lane.link.close()
        if self._own_sessions:
            await self._sessions.close()

    # Private

    def _left(self, sub: Subscription) -> None:
        for lane in self._lanes:
            if lane.remove(sub):
                if not lane.subs and lane is not self._lanes[0]:
                    self._lanes.remove(lane)
                    closing = asyncio.ensure_future(lane.link.close())
                    self._closing.add(closing)
                    closing.add_done_callback(self._closing.discard)
                return

    def _answered(self, message: dict[str, Any]) -> bool:
        """A frame answering a presence request (answer or error); False if it answers none."""
        waiter = self._requests.get(str(message.get("requestId")))
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_result(message)
        return True

    def _lane_failed(self, lane: _Lane) -> None:
        if lane in self._lanes:
            self._lanes.remove(lane)


class _Lane:
    """One socket and the non-overlapping subscriptions it carries."""

    def __init__(self, owner: StreamClient, session: aiohttp.ClientSession, options: dict[str, Any]) -> None:
        self._owner = owner
        self.subs: dict[str, Subscription] = {}
        self._by_address: dict[Address, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.link = Link(session, owner.url, on_open=self._join_all, on_frame=self._on_frame,
                         on_close=self._on_close, is_fatal=is_refusal, on_fatal=self._on_fatal, **options)

    def overlaps(self, sub: Subscription) -> bool:
        """True if ``sub`` and a subscription of this lane would both receive some event (presence included)."""
        return any(other.stream_name == sub.stream_name and other.group_id == sub.group_id
                   and (other.item_id is None or sub.item_id is None or other.item_id == sub.item_id
                        or (other.presence and sub.presence))
                   for other in self.subs.values())

    def add(self, sub: Subscription) -> None:
        self.subs[sub.id] = sub
        self._by_address[_address(sub)] = sub
        self.link.start()
        if self.link.ready:
            self._spawn(self._join(sub))

    def remove(self, sub: Subscription) -> bool:
        """Forget ``sub`` and send its leave; False if it is not on this lane."""
        if self.subs.pop(sub.id, None) is None:
            return False
        self._by_address.pop(_address(sub), None)
        if self.link.ready:
            self._spawn(self._send("leave", sub))
        return True

    def _forget(self, sub: Subscription) -> None:
        """Drop a subscription the engine never opened (refused join): no leave to send."""
        if self.subs.pop(sub.id, None) is not None:
            self._by_address.pop(_address(sub), None)

    def end_all(self) -> None:
        for sub in list(self.subs.values()):
            sub.unsubscribe()

    # Connection events

    async def _join_all(self) -> None:
        for sub in list(self.subs.values()):
            await self._join(sub)

    def _on_close(self) -> None:
        for sub in self.subs.values():
            sub.cursor.live = False

    def _on_fatal(self, exc: BaseException) -> None:
        refused = is_refusal(exc)
        what = "refused the connection" if refused else "cannot be used"
        for sub in list(self.subs.values()):
            sub.fail(SubscriptionError(f"{sub!r}: {self.link.safe_url} {what} ({refusal_status(exc)})",
                                       code="unauthorized" if refused else "subscription_failed"))
        self.subs.clear()
        self._by_address.clear()
        self._owner._lane_failed(self)

    def _on_frame(self, frame: bytes | str) -> None:
        try:
            message = decode(frame)
        except ValueError:
            log.warning("ignored a frame from %s that is not JSON: %.200r", self.link.safe_url, frame)
            return
        if not isinstance(message, dict):
            return
        if "requestId" in message and self._owner._answered(message):
            return
        if message.get("type") == "error":
            self._on_error(message)
        elif message.get("type") == "stream":
            self._route(StreamEvent(message))

    def _on_error(self, message: dict[str, Any]) -> None:
        """An error frame; one naming a subscription answers its join: retry it, unless it is over the cap."""
        error = message.get("error")
        log.warning("%s answered with an error: %s", self.link.safe_url, redact(str(error)))
        failed = self.subs.get(str(message.get("subscriptionId")))
        if failed is None:
            return
        body = error if isinstance(error, dict) else {}
        if body.get("code") == _TOO_MANY:  # retrying cannot help while the others stay open
            self._forget(failed)
            failed.fail(SubscriptionError(f"{failed!r}: {body.get('message')}", code=_TOO_MANY))
        else:  # its join could not be answered (snapshot unreadable): try again
            self._spawn(self._join(failed, delay=_JOIN_RETRY_DELAY))

    def _route(self, event: StreamEvent) -> None:
        stream, group, item = event.stream_name or "", event.group_id or "", event.id
        kind = event.event_type
        if kind in _FIRST_FRAMES:
            sub = self._by_address.get((stream, group, item))
        elif kind == "presence":  # id is null: the lane's one presence subscription of the group
            sub = next((s for s in self.subs.values()
                        if s.presence and s.stream_name == stream and s.group_id == group), None)
        else:
            sub = self._by_address.get((stream, group, None)) or self._by_address.get((stream, group, item))
        if sub is None:
            return
        if kind == "unauthorized":
            self._forget(sub)
            sub.refuse(event)
            return
        if sub.backed_up:
            sub.stall(lambda: self._spawn(self._join(sub)))
        elif sub.cursor.admit(event):
            sub.deliver(event)

    async def _join(self, sub: Subscription, delay: float = 0.0) -> None:
        """Join (again) from the position ``sub`` reached; frames are held back until the answer."""
        if delay:
            await asyncio.sleep(delay)
            if self.subs.get(sub.id) is not sub or not self.link.ready:
                return  # left meanwhile, or the reconnect joins it anyway
        await self._send("join", sub, sub.cursor.rejoining())

    async def _send(self, kind: str, sub: Subscription, position: dict[str, Any] | None = None) -> None:
        try:
            await self.link.send(encode({"type": kind, "data": sub.join_data(position)}))
        except ConnectionError:
            log.debug("%s of %r not sent: disconnected (joins are sent again on reconnect)", kind, sub)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _presence_answer(message: dict[str, Any], stream: str, group: str) -> PresenceAnswer:
    if message.get("type") != "error":
        return answer_from_wire(message)
    error = message.get("error")
    body = error if isinstance(error, dict) else {}
    reason = body.get("reason")
    raise SubscriptionError(f"presence of {stream}/{group}: {body.get('message')}",
                            code=str(body.get("code") or "subscription_failed"),
                            reason=reason if isinstance(reason, str) else None)


def _address(sub: Subscription) -> Address:
    return (sub.stream_name, sub.group_id, sub.item_id)
