"""Event views: the wire dict, unchanged, plus the documentation's attribute shape."""

from __future__ import annotations

import json

import orjson
import pytest

from streamhub.sdk.events import Record, StreamEvent, wrap_payload

WIRE = {"type": "stream", "timestamp": 1, "streamName": "todos", "groupId": "u1", "id": "t1",
        "event": {"type": "update", "data": {"done": True}}, "position": {"epoch": "e", "offset": 4}}
CUSTOM = {"type": "stream", "timestamp": 2, "streamName": "chat", "groupId": "r", "id": None,
          "event": {"type": "event", "event": {"type": "typing", "data": {"who": "ann"}}}}


def test_stream_event_is_the_wire_dict_with_attributes() -> None:
    event = wrap_payload(WIRE)
    assert isinstance(event, StreamEvent) and event == WIRE
    assert json.loads(json.dumps(event)) == WIRE and orjson.loads(orjson.dumps(event)) == WIRE
    assert event.event_type == "update" and event.data == {"done": True}
    assert event.event.update is not None and event.event.update.data == {"done": True}
    assert event.event.create is None and event.event.event is None
    assert event.position == {"epoch": "e", "offset": 4}  # unknown wire fields stay readable
    assert event.streamName == event.stream_name == "todos"


def test_custom_event_in_both_shapes() -> None:
    event = StreamEvent(CUSTOM)
    assert event.event_type == "event" and event.data == {"who": "ann"}
    assert event.event.event is not None and event.event.event.event_type == "typing"
    assert event["event"]["event"]["type"] == "typing" and event.id is None


def test_other_payloads() -> None:
    record = wrap_payload({"subscription_id": "s1", "context": None})
    assert isinstance(record, Record) and record.subscription_id == "s1" and record.context is None
    with pytest.raises(AttributeError, match="Record has no field 'missing'"):
        _ = record.missing
    assert wrap_payload([1, 2]) == [1, 2] and wrap_payload(None) is None
    assert not isinstance(wrap_payload({"type": "stream"}), StreamEvent)
