"""``Cursor``: which frames of a subscription reach the consumer, over sequences of wire frames.

The end-to-end behaviour runs over real sockets in test_resume.py; the cases here (a copy of an event already
handed out, frames of an engine without positions) cannot be provoked from a correct engine at will.
"""

from __future__ import annotations

from typing import Any

from streamhub.sdk.events import StreamEvent
from streamhub.sdk.positions import Cursor, Position


def sync(epoch: str, offset: int, recovered: bool = False) -> StreamEvent:
    return StreamEvent({"type": "stream", "streamName": "s", "groupId": "g", "event": {"type": "sync", "data": []},
                        "position": {"epoch": epoch, "offset": offset}, "recovered": recovered})


def change(offset: int | None, item: str = "a") -> StreamEvent:
    frame: dict[str, Any] = {"type": "stream", "streamName": "s", "groupId": "g", "id": item,
                             "event": {"type": "create", "data": 1}}
    if offset is not None:
        frame["offset"] = offset
    return StreamEvent(frame)


def test_events_already_handed_out_are_dropped_and_replays_are_marked() -> None:
    cursor = Cursor()
    assert cursor.rejoining() is None  # the first join is a plain one
    assert not cursor.admit(change(1))  # before the join's sync: stale
    assert cursor.admit(sync("e", 4))
    assert [cursor.admit(change(n)) for n in (5, 5, 3, 6)] == [True, False, False, True]
    assert cursor.rejoining() == {"epoch": "e", "offset": 6}
    assert not cursor.admit(change(7))  # between the re-join and its answer
    assert not cursor.admit(sync("e", 8, recovered=True))  # no snapshot: not for the consumer
    replayed = [change(n) for n in (7, 8)]
    assert all(cursor.admit(event) and event.replayed for event in replayed)
    live = change(9)
    assert cursor.admit(live) and not live.replayed
    assert cursor.position == Position("e", 9)


def test_a_fresh_sync_replaces_the_position_even_in_a_new_epoch() -> None:
    cursor = Cursor()
    cursor.admit(sync("old", 40))
    cursor.rejoining()
    assert cursor.admit(sync("new", 2))
    assert cursor.position == Position("new", 2) and cursor.admit(change(3))


def test_an_engine_without_positions_passes_everything_through() -> None:
    cursor = Cursor()
    plain = StreamEvent({"type": "stream", "streamName": "s", "groupId": "g", "event": {"type": "sync", "data": []}})
    assert cursor.admit(plain) and cursor.position is None
    assert cursor.admit(change(None)) and cursor.admit(change(None))
    assert cursor.rejoining() is None
