"""The depth bound applied before decoding a frame, and the tolerant look at a frame that did not decode."""

from __future__ import annotations

import json
from random import Random
from typing import Any

import pytest

from streamhub.protocol.codec import MAX_FRAME_DEPTH, depth_over, shorten
from streamhub.protocol.worker_messages import Envelope, peek_envelope


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_LEAVES = ["[[[{{", '"\\]]}', "\\", '"', "}{][", "\u00e9\u2028", 1, None, [], {}]


def _random_value(rng: Random, depth: int) -> Any:
    """A spine ``depth`` levels deep with leaves beside it; strings full of brackets, quotes and backslashes."""
    value: Any = rng.choice(_LEAVES)
    for _ in range(depth):
        siblings = [rng.choice(_LEAVES) for _ in range(rng.randint(0, 2))]
        children = [*siblings, value] if rng.random() < 0.5 else [value, *siblings]
        if rng.random() < 0.5:
            value = children
        else:
            value = {rng.choice(["[", "{k}", '"', "\\"]) + str(i): child for i, child in enumerate(children)}
    return value


def test_depth_matches_a_real_parse_and_ignores_brackets_in_strings() -> None:
    rng = Random(7)
    for _ in range(300):
        value = _random_value(rng, rng.randint(1, 300))
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        for limit in (0, 5, MAX_FRAME_DEPTH):
            expected = _depth(value) if _depth(value) > limit else None
            assert depth_over(text, limit) == expected
            assert depth_over(text.encode(), limit) == expected


@pytest.mark.parametrize(("frame", "expected"), [
    (b"[" * 251 + b"]" * 251, 251),
    (b"[" * 250 + b"]" * 250, None),
    (b'["' + b"[" * 1000 + b'"]', None),  # inside a string
    (b'["\\"' + b"[" * 1000 + b'"]', None),  # after an escaped quote, still inside the string
    (b"[" * 300 + b'"', 300),  # an unterminated string ends the count, not the frame's depth so far
    (b'"' + b"[" * 300, None),
    (b"\xff[" + b"{" * 260, 261),  # bytes that are not UTF-8 do not matter
])
def test_depth_edge_cases(frame: bytes, expected: int | None) -> None:
    assert depth_over(frame) == expected


@pytest.mark.parametrize(("frame", "expected"), [
    (b'{"type":"invokefunction","invocation_id":"i1","function_id":"f","data":{"n":1e400}}',
     Envelope("invokefunction", "i1", "f")),
    (b'{"invocation_id":"i2","type":"invokefunction","data":"\xff"}', Envelope("invokefunction", "i2")),
    (b'{"invocation_id":"i\\u00e93","data":' + b"[" * 5000, Envelope(invocation_id="i\u00e93")),  # too deep, cut
    (b'{"invocation_id":"i4","data":{"cut', Envelope(invocation_id="i4")),
    (b'{"invocation_id":5,"type":["x"]}', Envelope()),
    (b"[1, 2]", Envelope()),
    (b"\x00\xff garbage", Envelope()),
])
def test_peek_envelope_reads_who_waits_without_decoding_the_rest(frame: bytes, expected: Envelope) -> None:
    assert peek_envelope(frame) == expected


def test_shorten_keeps_both_ends() -> None:
    long = "Invalid value '" + "x" * 100_000 + "' - at `$.type`"
    short = shorten(long)
    assert len(short) < 400 and short.startswith("Invalid value 'xxx") and short.endswith("at `$.type`")
    assert shorten("short") == "short"
