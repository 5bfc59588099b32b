"""Unit tests for ``core.values``: what may enter a store, and messages that name the field and the spot."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from streamhub.core.update_ops import parse_ops
from streamhub.core.values import check_ops, check_value
from streamhub.errors import InvalidRequest

BIG = 1180591620717411303424  # 2**70, the value of the issue


def nested(levels: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``levels`` objects: ``{"d": {"d": 1}}`` for 2."""
    value = leaf
    for _ in range(levels):
        value = {"d": value}
    return value


def refusal(value: Any, max_depth: int = 64, **kwargs: Any) -> str:
    with pytest.raises(InvalidRequest) as caught:
        check_value(value, "stream.set: data", max_depth, **kwargs)
    assert caught.value.code == "invalid_value"
    return caught.value.message


@pytest.mark.parametrize("value", [
    None, True, "", "é\u2028", 0, -(2**63), 2**64 - 1, 1.5, -0.0, 1e308, [], {}, [[[]]],
    {"a": [1, {"b": None}], "c": "x"}, nested(64),
])
def test_json_values_up_to_the_limits_pass(value: Any) -> None:
    check_value(value, "stream.set: data", 64)


@pytest.mark.parametrize(("value", "message"), [
    ({"n": BIG}, f"stream.set: data.n: integer {BIG} is outside the 64-bit range"),
    (2**64, f"stream.set: data: integer {2**64} is outside the 64-bit range"),
    ([1, -(2**63) - 1], f"stream.set: data[1]: integer {-(2**63) - 1} is outside the 64-bit range"),
    (10**500, "stream.set: data: integer of 1661 bits is outside the 64-bit range"),
    ({"a": [0, {"b": math.nan}]}, "stream.set: data.a[1].b: nan is not a JSON number (no NaN or Infinity)"),
    ({"x y": -math.inf}, 'stream.set: data["x y"]: -inf is not a JSON number (no NaN or Infinity)'),
    (math.inf, "stream.set: data: inf is not a JSON number (no NaN or Infinity)"),
    ({"k": {1: "v"}}, "stream.set: data.k: key 1 is not a string"),
    ({"t": (1, 2)}, "stream.set: data.t: a tuple is not a JSON value"),
    ([{1, 2}], "stream.set: data[0]: a set is not a JSON value"),
    (b"raw", "stream.set: data: a bytes is not a JSON value"),
])
def test_non_wire_values_are_refused_naming_the_spot(value: Any, message: str) -> None:
    assert refusal(value).startswith(message)


def test_depth_counts_containers_and_names_where_it_passes_the_limit() -> None:
    assert refusal(nested(65)).startswith("stream.set: data.d.d.d")
    assert refusal(nested(65)).endswith(": nested deeper than 64 levels")
    assert refusal([[[["x"]]]], max_depth=3) == "stream.set: data[0][0][0]: nested deeper than 3 levels"
    check_value([[["x"]]], "stream.set: data", 3)
    deep = refusal(nested(500))  # a long path is cut in the message
    assert len(deep) < 200 and "…: nested deeper than 64 levels" in deep


def test_depth_of_the_path_a_value_is_stored_under_counts() -> None:
    check_value(nested(62), "v", 64, depth=2)
    assert refusal(nested(63), depth=2).endswith("nested deeper than 64 levels (counting the 2 levels it is "
                                                 "stored under)")
    assert refusal(1, max_depth=3, depth=4) == ("stream.set: data: nested deeper than 3 levels (counting the 4 "
                                                "levels it is stored under)")


def test_update_op_values_are_checked_with_their_index_and_path_depth() -> None:
    ops = parse_ops([
        {"type": "set", "path": ["a", "b"], "value": nested(62)},  # 2 + 62 = 64: the limit itself
        {"type": "merge", "value": {"ok": [1]}},
        {"type": "remove", "path": ["x"] * 80},  # removing never nests anything
        {"type": "set", "path": ["p"] * 40, "value": nested(40)},  # too long a path: apply_ops refuses it
    ])
    check_ops(ops, "stream.update", 64)
    cases = [
        ({"type": "merge", "path": "m", "value": {"n": BIG}}, 64,
         f"stream.update: ops[1].value.n: integer {BIG} is outside the 64-bit range"),
        ({"type": "set", "path": ["a", "b"], "value": nested(63)}, 64, "stream.update: ops[1].value.d.d"),
        ({"type": "append", "path": "list", "value": nested(63)}, 64,  # an append nests inside the array
         "stream.update: ops[1].value.d.d"),
        ({"type": "append", "value": [math.nan]}, 64, "stream.update: ops[1].value[0]: nan is not a JSON number"),
        ({"type": "increment", "path": ["a", "b", "c", "d"], "by": 1}, 3,  # creates 4 objects
         "stream.update: ops[1].path: nested deeper than 3 levels (counting the 4 levels it is stored under)"),
    ]
    for op, max_depth, message in cases:
        with pytest.raises(InvalidRequest) as caught:
            check_ops(parse_ops([{"type": "remove", "path": "x"}, op]), "stream.update", max_depth)
        assert caught.value.code == "invalid_value" and caught.value.message.startswith(message), caught.value


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 9 and roll < 0.35:
        return {f"k{n}": _random_value(rng, depth + 1) for n in range(rng.randrange(4))}
    if depth < 9 and roll < 0.5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return rng.choice([
        None, True, "s", 0, 2**63 - 1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, BIG, 0.5, math.nan, math.inf,
        -math.inf, 1e308,
    ])


def _depth(value: Any) -> int:
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((_depth(child) for child in children), default=0)
    return 0


def test_the_check_accepts_exactly_what_round_trips_through_the_wire_within_the_depth() -> None:
    rng = random.Random(10)
    accepted = refused = 0
    for _ in range(3000):
        value = _random_value(rng, 0)
        try:
            round_trips = orjson.loads(orjson.dumps(value)) == value  # NaN and Infinity come back as null
        except orjson.JSONEncodeError:
            round_trips = False
        expected = round_trips and _depth(value) <= 6
        try:
            check_value(value, "v", 6)
        except InvalidRequest:
            assert not expected, value
            refused += 1
        else:
            assert expected, value
            accepted += 1
    assert accepted > 500 and refused > 500
