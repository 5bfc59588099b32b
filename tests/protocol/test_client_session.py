"""ClientSession and framing: bytes in, typed messages or errors out; no event loop, no socket."""

from __future__ import annotations

import pytest

from streamhub.errors import InvalidName, ProtocolViolation
from streamhub.protocol.client_messages import Join, Leave, error_frame
from streamhub.protocol.client_session import ClientSession
from streamhub.protocol.codec import text_frame


def test_join_and_leave_decode_and_track_subscriptions() -> None:
    session = ClientSession()
    join = session.receive(b'{"type":"join","data":{"subscriptionId":"s1","streamName":"t","groupId":"g",'
                           b'"id":"i","extra":1}}')
    assert isinstance(join, Join) and join.data.id == "i"
    assert session.opened(join.data) is None
    again = session.receive('{"type":"join","data":{"subscriptionId":"s1","streamName":"t","groupId":"h"}}')
    assert isinstance(again, Join)
    assert session.opened(again.data) == join.data  # same id replaces
    leave = session.receive('{"type":"leave","data":{"subscriptionId":"s1","streamName":"t","groupId":"h"}}')
    assert isinstance(leave, Leave)
    assert session.closed("s1") == again.data and session.subscriptions == {}


@pytest.mark.parametrize(("frame", "error", "where"), [
    ("{bad", ProtocolViolation, "JSON"),
    ('{"type":"Join","data":{}}', ProtocolViolation, "$.type"),
    ('{"type":"join","data":{"subscriptionId":"s","streamName":1,"groupId":"g"}}', ProtocolViolation,
     "$.data.streamName"),
    ('{"type":"join","data":{"subscriptionId":"s","streamName":"a\\u0001","groupId":"g"}}', InvalidName,
     "data.streamName"),
    ('{"type":"leave","data":{"subscriptionId":"s","streamName":"a","groupId":"g","id":""}}', InvalidName,
     "data.id"),
])
def test_bad_frames_say_what_and_where(frame: str, error: type[Exception], where: str) -> None:
    with pytest.raises(error) as caught:
        ClientSession().receive(frame)
    assert where in str(caught.value)


def test_empty_frames_are_ignored() -> None:
    assert ClientSession().receive("  \n") is None
    assert ClientSession().receive(b"") is None


@pytest.mark.parametrize(("size", "header"), [(5, b"\x81\x05"), (200, b"\x81\x7e\x00\xc8"),
                                              (70000, b"\x81\x7f" + (70000).to_bytes(8, "big"))])
def test_text_frame_lengths(size: int, header: bytes) -> None:
    frame = text_frame(b"x" * size)
    assert frame.startswith(header) and len(frame) == len(header) + size


def test_error_frame_names_the_subscription_of_a_failed_join() -> None:
    error = InvalidName("stream.list: groupId must be a non-empty string")
    assert error_frame(error) == {"type": "error", "error": error.to_wire()}
    assert error_frame(error, "s1")["subscriptionId"] == "s1"
