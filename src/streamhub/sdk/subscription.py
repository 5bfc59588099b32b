"""One subscription to a group or an item, as the program sees it: a callback or an async iterator.

Frames are queued per subscription and handed out in order by one task (callback form) or by ``__anext__``
(iterator form), so a slow consumer never stalls the shared socket. A consumer that falls ``max_queue`` events
behind stops receiving; once it has worked through half of its backlog the subscription is re-joined from its
position (``Cursor``), so the engine replays what it skipped, or sends a fresh ``sync`` if it no longer can: the
same contract as the engine's 1013 for slow clients, without holding more than ``max_queue`` events.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from streamhub.sdk.errors import SubscriptionError
from streamhub.sdk.events import StreamEvent
from streamhub.sdk.positions import Cursor, Position
from streamhub.sdk.presence import Members, PresenceMember

__all__ = ["Callback", "Subscription"]

log = logging.getLogger(__name__)

Callback = Callable[[StreamEvent], Awaitable[None] | None]


class Subscription:
    """A live view of ``stream_name/group_id`` (or of one item when ``item_id`` is set).

    The first event is a ``sync`` holding the current value(s). After a reconnect the events missed meanwhile
    follow (``event.replayed`` is True), or, when the engine can no longer replay them all, another ``sync`` with
    the state at that time, which replaces the earlier one. ``unsubscribe()`` ends it; so does leaving an
    ``async with`` block.

    With ``presence=True`` the engine also sends, after each ``sync``, a ``presence`` event (``action`` ``sync``:
    who is in the group) and then one per member that joins or leaves; ``members`` is kept current from them.
    """

    def __init__(self, stream_name: str, group_id: str, item_id: str | None, callback: Callback | None,
                 max_queue: int, on_unsubscribe: Callable[[Subscription], None], presence: bool = False) -> None:
        self.id = str(uuid.uuid4())
        self.stream_name = stream_name
        self.group_id = group_id
        self.item_id = item_id
        self.presence = presence
        self._members = Members()
        self.error: SubscriptionError | None = None
        self._error_was_delivered = False  # the refusal came as an ``unauthorized`` event the consumer sees
        self.cursor = Cursor()
        self._callback = callback
        self._max_queue = max_queue
        self._on_unsubscribe = on_unsubscribe
        self._queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
        self._synced = asyncio.Event()
        self._ended = False
        self._last_sync: StreamEvent | None = None
        self._on_drained: Callable[[], None] | None = None  # re-joins a consumer that fell behind
        self._task = asyncio.create_task(self._run_callback()) if callback is not None else None

    def __repr__(self) -> str:
        item = f"/{self.item_id}" if self.item_id is not None else ""
        return f"<Subscription {self.stream_name}/{self.group_id}{item} {self.id}>"

    @property
    def active(self) -> bool:
        """False once unsubscribed, refused or failed."""
        return not self._ended

    @property
    def position(self) -> Position | None:
        """The last change handed to the consumer (epoch and offset); None before the first ``sync`` or when the
        engine does not number changes. A re-join resumes from here."""
        return self.cursor.position

    @property
    def last_sync(self) -> StreamEvent | None:
        """The engine's latest answer to a join, including a ``recovered: true`` one (not handed to the consumer:
        it holds no snapshot; the replayed events follow it)."""
        return self.cursor.last_sync

    @property
    def members(self) -> list[PresenceMember]:
        """Who is in the group (one member per client connection, oldest first), for a presence subscription.

        Replaced by each presence ``sync`` (after every join and reconnect), then updated by joins and leaves.
        The engine lists at most ``max_presence_members``; ``member_count`` stays exact.
        """
        return self._members.list()

    @property
    def member_count(self) -> int:
        """How many members the group has (exact even when ``members`` was cut at the engine's limit)."""
        return self._members.count

    def join_data(self, position: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of this subscription's join/leave frames (wire names); ``position`` asks to resume."""
        data: dict[str, Any] = {"subscriptionId": self.id, "streamName": self.stream_name, "groupId": self.group_id}
        if self.item_id is not None:
            data["id"] = self.item_id
        if position is not None:
            data["position"] = position
        if self.presence:
            data["presence"] = True
        return data

    def unsubscribe(self) -> None:
        """Leave: no more events; an iterator stops after this."""
        if not self._ended:
            self._on_unsubscribe(self)
            self._drain()
            self._end()

    async def wait_synced(self, timeout: float = 10.0) -> StreamEvent:
        """Wait for the first ``sync`` and return it.

        Raises:
            SubscriptionError: refused (``code == "unauthorized"``), failed, or no sync within ``timeout``.
        """
        synced = asyncio.ensure_future(self._synced.wait())
        try:
            await asyncio.wait_for(synced, timeout)
        except TimeoutError:
            raise SubscriptionError(f"{self!r}: no sync within {timeout:g} s") from None
        if self.error is not None:
            raise self.error
        if self._last_sync is None:
            raise SubscriptionError(f"{self!r}: unsubscribed before its first sync")
        return self._last_sync

    # Used by the connection

    @property
    def backed_up(self) -> bool:
        """The consumer holds ``max_queue`` undelivered events: take no more."""
        return self._queue.qsize() >= self._max_queue

    def stall(self, rejoin: Callable[[], None]) -> None:
        """Stop taking events; call ``rejoin`` once the consumer has worked through half of its backlog."""
        if self._on_drained is None:
            log.warning("%r: consumer is %d events behind; re-joining from its position once it catches up",
                        self, self._max_queue)
        self.cursor.live = False
        self._on_drained = rejoin
        self._after_take()

    def deliver(self, event: StreamEvent) -> None:
        """Queue ``event`` for the consumer."""
        if self._ended:
            return
        if event.event_type == "presence":
            self._members.apply(event.event)  # current as soon as it arrives, before the consumer reads it
        self._queue.put_nowait(event)
        if event.event_type == "sync":
            self._last_sync = event
            self._synced.set()

    def refuse(self, event: StreamEvent) -> None:
        """The engine refused the join: hand out the ``unauthorized`` event, then end (``error.reason`` says why)."""
        reason = event.event.get("reason")
        reason = reason if isinstance(reason, str) else None
        why = f" ({reason})" if reason else ""
        self.error = SubscriptionError(f"{self!r}: join refused{why}", code="unauthorized", reason=reason)
        if not self._ended:
            self._error_was_delivered = True
            self._queue.put_nowait(event)
        self._end()

    def fail(self, error: SubscriptionError) -> None:
        """The subscription cannot continue; an iterator raises ``error``."""
        self.error = error
        log.error("%s", error.message)
        self._end()

    # Iterator form

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._queue.get()
        self._after_take()
        if event is None:
            self._queue.put_nowait(None)  # later calls end too
            if self.error is not None and not self._error_was_delivered:
                raise self.error
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.unsubscribe()

    # Private

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._queue.put_nowait(None)
        self._synced.set()

    def _after_take(self) -> None:
        rejoin = self._on_drained
        if rejoin is not None and not self._ended and self._queue.qsize() <= self._max_queue // 2:
            self._on_drained = None
            rejoin()

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _run_callback(self) -> None:
        callback = self._callback
        assert callback is not None
        while (event := await self._queue.get()) is not None:
            self._after_take()
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%r: callback failed on a %s event", self, event.event_type)
