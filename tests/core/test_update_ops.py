"""Unit tests for the update ops of ``stream.update``: wire parsing, semantics, limits and all-or-nothing."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from streamhub.core.update_ops import (
    AppendOp,
    DecrementOp,
    IncrementOp,
    MergeOp,
    RemoveOp,
    SetOp,
    UpdateOp,
    apply_ops,
    parse_ops,
)
from streamhub.errors import InvalidRequest, UpdateOpError

ALL_KINDS = ["set", "merge", "increment", "decrement", "append", "remove"]


def wire_op(kind: str, path: Any) -> dict[str, Any]:
    """A valid wire op of ``kind`` at ``path``."""
    extra: Any = {
        "set": {"value": 1}, "merge": {"value": {"x": 1}}, "increment": {"by": 1},
        "decrement": {"by": 1}, "append": {"value": "x"}, "remove": {},
    }[kind]
    return {"type": kind, "path": path, **extra}


def run(current: Any, ops: list[Any], *, exists: bool = True) -> Any:
    """Parse and apply ``ops``; check that neither the input value nor the ops were touched."""
    before, ops_before = copy.deepcopy(current), copy.deepcopy(ops)
    result = apply_ops(current, exists, parse_ops(ops))
    assert current == before
    assert ops == ops_before
    return result


def fail(current: Any, ops: list[Any], *, exists: bool = True) -> UpdateOpError:
    """Parse and apply ``ops`` expecting an ``UpdateOpError``; check the input value was left alone."""
    before = copy.deepcopy(current)
    with pytest.raises(UpdateOpError) as info:
        apply_ops(current, exists, parse_ops(ops))
    assert current == before
    return info.value


def parse_error(raw: object) -> str:
    with pytest.raises(InvalidRequest) as info:
        parse_ops(raw)
    assert not isinstance(info.value, UpdateOpError)
    return info.value.message


# Parsing


def test_parse_builds_one_op_per_entry() -> None:
    ops = parse_ops([
        {"type": "set", "path": "a", "value": 1},
        {"type": "merge", "value": {"b": 2}},
        {"type": "increment", "path": "n", "by": 2},
        {"type": "decrement", "path": ["x", "n"], "by": -3},
        {"type": "append", "path": None, "value": "s"},
        {"type": "remove", "path": "", "ignored": True},
    ])
    assert ops == [
        SetOp("a", 1), MergeOp("", {"b": 2}), IncrementOp("n", 2), DecrementOp(("x", "n"), -3),
        AppendOp("", "s"), RemoveOp(""),
    ]


def test_parse_set_without_value_means_null() -> None:
    assert parse_ops([{"type": "set", "path": "a"}]) == [SetOp("a", None)]


def test_parse_keeps_a_string_path_as_one_key_and_a_list_as_segments() -> None:
    dotted, listed = parse_ops([wire_op("set", "a.b"), wire_op("set", ["a", "b"])])
    assert dotted.segments == ("a.b",)
    assert listed.path == ("a", "b") and listed.segments == ("a", "b")
    assert parse_ops([wire_op("set", "")])[0].segments == ()
    assert parse_ops([wire_op("set", [])])[0].segments == ()


def test_parse_passes_op_objects_through() -> None:
    op = UpdateOp.increment("n", 4)
    assert parse_ops([op]) == [op]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "set"}, "ops must be a list, got dict"),
        (None, "ops must be a list, got null"),
        (["set"], "ops[0] must be an object, got str"),
        ([wire_op("set", "a"), {"path": "a"}], "ops[1].type is required"),
        (
            [{"type": "mul", "path": "a"}],
            'ops[0].type must be one of set, merge, increment, decrement, append, remove; got "mul"',
        ),
        ([{"type": "Set", "path": "a"}], 'ops[0].type must be one of set, merge, increment, decrement, append, '
                                         'remove; got "Set"'),
        ([{"type": 3}], "ops[0].type must be one of set, merge, increment, decrement, append, remove; got int"),
        ([{"type": "set", "value": 1}], "ops[0].path is required"),
        ([{"type": "remove"}], "ops[0].path is required"),
        ([{"type": "increment", "by": 1}], "ops[0].path is required"),
        ([{"type": "set", "path": None}], "ops[0].path must be a string or a list of strings, got null"),
        ([{"type": "set", "path": 5}], "ops[0].path must be a string or a list of strings, got int"),
        ([{"type": "merge", "path": {"a": 1}, "value": {}}],
         "ops[0].path must be a string or a list of strings, got dict"),
        ([{"type": "append", "path": ["a", 1], "value": 1}], "ops[0].path[1] must be a string, got int"),
        ([{"type": "merge", "path": "a"}], "ops[0].value is required"),
        ([{"type": "append", "path": "a"}], "ops[0].value is required"),
        ([{"type": "increment", "path": "a"}], "ops[0].by is required"),
        ([wire_op("set", "a"), wire_op("set", "b"), {"type": "increment", "path": "n", "by": "1"}],
         "ops[2].by must be an integer, got str"),
        ([{"type": "increment", "path": "n", "by": 1.5}], "ops[0].by must be an integer, got float"),
        ([{"type": "decrement", "path": "n", "by": 1.0}], "ops[0].by must be an integer, got float"),
        ([{"type": "increment", "path": "n", "by": True}], "ops[0].by must be an integer, got bool"),
        ([{"type": "increment", "path": "n", "by": None}], "ops[0].by must be an integer, got null"),
        ([{"type": "increment", "path": "n", "by": 2**63}],
         f"ops[0].by must fit in a signed 64-bit integer, got {2**63}"),
    ],
)
def test_parse_errors_name_the_field(raw: object, message: str) -> None:
    assert parse_error(raw) == message


def test_parse_accepts_the_64_bit_bounds_for_by() -> None:
    ops = parse_ops([{"type": "increment", "path": "n", "by": 2**63 - 1},
                     {"type": "decrement", "path": "n", "by": -(2**63)}])
    assert ops == [IncrementOp("n", 2**63 - 1), DecrementOp("n", -(2**63))]


def test_parse_error_is_a_plain_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_ops("nope")
    assert info.value.code == "invalid_request"


# Building ops in Python


def test_builders_and_to_wire() -> None:
    assert UpdateOp.set("completed", True).to_wire() == {"type": "set", "path": "completed", "value": True}
    assert UpdateOp.set("").to_wire() == {"type": "set", "path": "", "value": None}
    assert UpdateOp.merge({"a": 1}).to_wire() == {"type": "merge", "path": "", "value": {"a": 1}}
    assert UpdateOp.merge({"a": 1}, ["s", "x"]).to_wire() == {"type": "merge", "path": ["s", "x"],
                                                              "value": {"a": 1}}
    assert UpdateOp.increment("n").to_wire() == {"type": "increment", "path": "n", "by": 1}
    assert UpdateOp.decrement("n", 5).to_wire() == {"type": "decrement", "path": "n", "by": 5}
    assert UpdateOp.append(["a", "b"], "x").to_wire() == {"type": "append", "path": ["a", "b"], "value": "x"}
    assert UpdateOp.remove("gone").to_wire() == {"type": "remove", "path": "gone"}


def test_to_wire_round_trips_through_parse() -> None:
    ops = [
        UpdateOp.set(["a", "b"], [1]), UpdateOp.merge({"k": None}, "m"), UpdateOp.increment("n", -2),
        UpdateOp.decrement("", 3), UpdateOp.append("", {"x": 1}), UpdateOp.remove(["a"]),
    ]
    assert parse_ops([op.to_wire() for op in ops]) == ops


def test_ops_are_immutable_and_list_paths_become_tuples() -> None:
    op = SetOp(["a", "b"], 1)  # type: ignore[arg-type]
    assert op.path == ("a", "b")
    assert UpdateOp.remove(["x"]).path == ("x",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.path = "c"  # type: ignore[misc]
    assert hash(UpdateOp.increment(["a"], 1)) == hash(IncrementOp(("a",), 1))


def test_builder_ops_apply_like_parsed_ones() -> None:
    ops = [UpdateOp.set("completed", True), UpdateOp.increment("views"), UpdateOp.append(["log", "all"], "x")]
    assert apply_ops({"title": "t"}, True, ops) == {
        "title": "t", "completed": True, "views": 1, "log": {"all": ["x"]},
    }


# set


def test_set_field_keeps_other_fields() -> None:
    assert run({"count": 1, "name": "a"}, [{"type": "set", "path": "count", "value": 5}]) == {
        "count": 5, "name": "a",
    }


def test_set_root_replaces_the_value_even_with_null() -> None:
    assert run({"a": 1}, [{"type": "set", "path": "", "value": [1, 2]}]) == [1, 2]
    assert run({"": "empty-field", "keep": True}, [{"type": "set", "path": ""}]) is None


def test_set_creates_missing_item() -> None:
    assert run({}, [{"type": "set", "path": "a", "value": 1}], exists=False) == {"a": 1}


def test_set_dotted_string_is_one_literal_key() -> None:
    current = {"user": {"name": "B"}}
    assert run(current, [{"type": "set", "path": "user.name", "value": "A"}]) == {
        "user": {"name": "B"}, "user.name": "A",
    }


def test_set_nested_path_creates_missing_and_null_intermediates() -> None:
    current = {"a": None, "keep": 1}
    assert run(current, [{"type": "set", "path": ["a", "b", "c"], "value": 1}]) == {
        "a": {"b": {"c": 1}}, "keep": 1,
    }


@pytest.mark.parametrize("root", ["text", 3, [1], None, True])
def test_set_field_on_non_object_root_fails(root: Any) -> None:
    error = fail(root, [{"type": "set", "path": "a", "value": 1}])
    assert error.code == "set.target_not_object"
    assert error.index == 0
    assert 'set at path "a"' in error.message


def test_set_nested_through_a_non_object_fails() -> None:
    error = fail({"a": 5}, [{"type": "set", "path": ["a", "b"], "value": 1}])
    assert error.code == "set.target_not_object"
    assert error.message == 'ops[0]: set at path ["a", "b"]: "a" holds a number, not an object'


# merge


def test_merge_root_is_shallow() -> None:
    current = {"a": {"x": 1}, "b": 1}
    assert run(current, [{"type": "merge", "value": {"a": {"y": 2}, "c": None}}]) == {
        "a": {"y": 2}, "b": 1, "c": None,
    }


@pytest.mark.parametrize("path", [None, "", []])
def test_merge_root_spellings(path: Any) -> None:
    assert run({"a": 1}, [{"type": "merge", "path": path, "value": {"b": 2}}]) == {"a": 1, "b": 2}


def test_merge_root_on_missing_item_creates_it() -> None:
    assert run({}, [{"type": "merge", "value": {"a": 1}}], exists=False) == {"a": 1}


@pytest.mark.parametrize("root", ["leaf", [1], None, 0])
def test_merge_root_onto_non_object_fails_instead_of_skipping(root: Any) -> None:
    error = fail(root, [{"type": "merge", "value": {"a": 1}}])
    assert error.code == "merge.target_not_object"


def test_merge_twice_at_first_level_path_accumulates() -> None:
    ops = [
        {"type": "merge", "path": "session-1", "value": {"ts1": "a"}},
        {"type": "merge", "path": "session-1", "value": {"ts2": "b"}},
    ]
    assert run({}, ops, exists=False) == {"session-1": {"ts1": "a", "ts2": "b"}}
    assert run({"session-1": {"ts0": "z"}}, ops) == {"session-1": {"ts0": "z", "ts1": "a", "ts2": "b"}}


def test_merge_at_nested_path_keeps_siblings() -> None:
    current = {"sessions": {"abc": {"author": "old", "topic": "kept"}, "other": {"x": 1}}, "top": True}
    op = {"type": "merge", "path": ["sessions", "abc"], "value": {"author": "new"}}
    assert run(current, [op]) == {
        "sessions": {"abc": {"author": "new", "topic": "kept"}, "other": {"x": 1}}, "top": True,
    }


def test_merge_nested_creates_missing_intermediates() -> None:
    assert run({}, [{"type": "merge", "path": ["a", "b", "c"], "value": {"x": 1}}]) == {
        "a": {"b": {"c": {"x": 1}}},
    }


def test_merge_nested_replaces_null_and_non_object_intermediates() -> None:
    assert run({"a": None}, [{"type": "merge", "path": ["a", "b"], "value": {"x": 1}}]) == {"a": {"b": {"x": 1}}}
    assert run({"a": [1, 2]}, [{"type": "merge", "path": ["a", "b"], "value": {"x": 1}}]) == {
        "a": {"b": {"x": 1}},
    }
    assert run({"s": {"abc": "garbage"}}, [{"type": "merge", "path": ["s", "abc"], "value": {"x": 1}}]) == {
        "s": {"abc": {"x": 1}},
    }


def test_merge_with_path_replaces_a_non_object_root() -> None:
    assert run("leaf", [{"type": "merge", "path": "a", "value": {"x": 1}}]) == {"a": {"x": 1}}


def test_merge_literal_dotted_segment() -> None:
    current = {"a": {"b": {"kept": True}}}
    assert run(current, [{"type": "merge", "path": ["a.b"], "value": {"x": 1}}]) == {
        "a": {"b": {"kept": True}}, "a.b": {"x": 1},
    }


def test_merge_remove_merge() -> None:
    ops = [
        {"type": "merge", "path": "s", "value": {"a": 1}},
        {"type": "remove", "path": "s"},
        {"type": "merge", "path": "s", "value": {"b": 2}},
    ]
    assert run({"s": {"z": 0}}, ops) == {"s": {"b": 2}}


@pytest.mark.parametrize("value", [[1], "text", None, 3])
def test_merge_value_must_be_an_object(value: Any) -> None:
    assert fail({}, [{"type": "merge", "path": "a", "value": value}]).code == "merge.value.not_an_object"


def test_merge_value_key_limit() -> None:
    fine = {f"k{i}": i for i in range(1024)}
    assert run({}, [{"type": "merge", "value": fine}]) == fine
    error = fail({}, [{"type": "merge", "value": {**fine, "one_more": 1}}])
    assert error.code == "merge.value.too_many_keys"


@pytest.mark.parametrize("key", ["__proto__", "constructor", "prototype"])
def test_merge_value_proto_key(key: str) -> None:
    assert fail({}, [{"type": "merge", "value": {key: {"polluted": True}}}]).code == "merge.value.proto_polluted"


def test_merge_value_proto_key_only_checked_at_top_level() -> None:
    assert run({}, [{"type": "merge", "value": {"a": {"__proto__": 1}}}]) == {"a": {"__proto__": 1}}


def nested(levels: int) -> Any:
    """An object nesting ``levels`` objects/arrays deep (``{}`` is 1)."""
    value: Any = {}
    for level in reversed(range(levels - 1)):  # ends with level 0: the outermost is an object
        value = [value] if level % 2 else {"n": value}
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def test_merge_value_depth_limit_counts_objects_and_arrays() -> None:
    ok, too_deep = nested(16), nested(17)
    assert (_depth(ok), _depth(too_deep)) == (16, 17)
    assert run({}, [{"type": "merge", "value": ok}]) == ok
    assert fail({}, [{"type": "merge", "value": too_deep}]).code == "merge.value.too_deep"


def test_merge_path_is_checked_before_value() -> None:
    error = fail({}, [{"type": "merge", "path": ["__proto__"], "value": "not an object"}])
    assert error.code == "merge.path.proto_polluted"


# increment / decrement


def test_increment_and_decrement_fields() -> None:
    current = {"count": 10, "other": "x"}
    ops = [
        {"type": "increment", "path": "count", "by": 5},
        {"type": "decrement", "path": "count", "by": 3},
        {"type": "increment", "path": "new_inc", "by": 3},
        {"type": "decrement", "path": "new_dec", "by": 3},
    ]
    assert run(current, ops) == {"count": 12, "other": "x", "new_inc": 3, "new_dec": -3}


def test_increment_on_new_item_creates_the_counter() -> None:
    assert run({}, [{"type": "increment", "path": "counter", "by": 7}], exists=False) == {"counter": 7}


def test_ints_stay_ints_and_floats_use_float_arithmetic() -> None:
    result = run({"i": 2, "f": 1.5}, [
        {"type": "increment", "path": "i", "by": 3},
        {"type": "increment", "path": "f", "by": 2},
        {"type": "decrement", "path": "f", "by": 1},
    ])
    assert result == {"i": 5, "f": 2.5}
    assert type(result["i"]) is int and type(result["f"]) is float


def test_large_integers_stay_exact() -> None:
    big = 2**63 - 1
    assert run({"n": big}, [{"type": "increment", "path": "n", "by": 1}]) == {"n": 2**63}
    assert run({"n": 2**64 - 2}, [{"type": "increment", "path": "n", "by": 1}]) == {"n": 2**64 - 1}
    assert run({}, [{"type": "decrement", "path": "n", "by": -(2**63)}]) == {"n": 2**63}


@pytest.mark.parametrize(("kind", "start", "by"), [("increment", 2**64 - 1, 1), ("decrement", -(2**63), 1)])
def test_integer_results_outside_64_bits_fail(kind: str, start: int, by: int) -> None:
    assert fail({"n": start}, [{"type": kind, "path": "n", "by": by}]).code == f"{kind}.not_number"


def test_float_results_must_be_finite() -> None:
    assert fail({"f": float("nan")}, [{"type": "increment", "path": "f", "by": 1}]).code == "increment.not_number"


@pytest.mark.parametrize("kind", ["increment", "decrement"])
@pytest.mark.parametrize(("field", "described"), [
    ("a string", "a string"), (None, "null"), (True, "a boolean"), ([1], "an array"), ({}, "an object"),
])
def test_numeric_ops_on_non_numbers_fail(kind: str, field: Any, described: str) -> None:
    error = fail({"count": field}, [{"type": kind, "path": "count", "by": 1}])
    assert error.code == f"{kind}.not_number"
    assert error.message == f'ops[0]: {kind} at path "count": current value is {described}, not a number'


def test_numeric_op_by_zero_still_checks_the_type() -> None:
    assert fail({"bad": "v"}, [{"type": "increment", "path": "bad", "by": 0}]).code == "increment.not_number"


@pytest.mark.parametrize("kind", ["increment", "decrement"])
def test_numeric_ops_on_non_object_root_fail(kind: str) -> None:
    assert fail("text", [{"type": kind, "path": "n", "by": 1}]).code == f"{kind}.target_not_object"
    assert fail([1], [{"type": kind, "path": ["a", "n"], "by": 1}]).code == f"{kind}.target_not_object"


def test_numeric_ops_at_root() -> None:
    assert run(2, [{"type": "increment", "path": "", "by": 3}]) == 5
    assert run(5, [{"type": "decrement", "path": "", "by": 3}]) == 2
    assert run(0.5, [{"type": "increment", "path": [], "by": 1}]) == 1.5


def test_numeric_ops_at_root_of_missing_item_start_from_nothing() -> None:
    assert run({}, [{"type": "increment", "path": "", "by": 4}], exists=False) == 4
    assert run({}, [{"type": "decrement", "path": "", "by": 4}], exists=False) == -4


def test_numeric_ops_at_root_of_existing_object_fail() -> None:
    assert fail({}, [{"type": "increment", "path": "", "by": 1}]).code == "increment.not_number"
    error = fail({"a": 1}, [{"type": "decrement", "path": "", "by": 1}])
    assert error.code == "decrement.not_number"
    assert error.message == 'ops[0]: decrement at path "" (the root): current value is an object, not a number'


def test_missing_item_counts_as_missing_only_until_an_op_applies() -> None:
    ops = [{"type": "set", "path": "a", "value": 1}, {"type": "increment", "path": "", "by": 1}]
    error = fail({}, ops, exists=False)
    assert (error.index, error.code) == (1, "increment.not_number")


def test_nested_increment_creates_intermediates_and_rejects_non_objects() -> None:
    assert run({"stats": None}, [{"type": "increment", "path": ["stats", "views"], "by": 2}]) == {
        "stats": {"views": 2},
    }
    error = fail({"stats": "x"}, [{"type": "increment", "path": ["stats", "views"], "by": 2}])
    assert error.code == "increment.target_not_object"


# append


def test_append_to_array_field() -> None:
    current = {"events": [{"kind": "start"}]}
    assert run(current, [{"type": "append", "path": "events", "value": {"kind": "chunk"}}]) == {
        "events": [{"kind": "start"}, {"kind": "chunk"}],
    }


def test_append_array_value_is_one_element() -> None:
    assert run({"e": []}, [{"type": "append", "path": "e", "value": ["a", "b"]}]) == {"e": [["a", "b"]]}


def test_append_into_existing_empty_array_keeps_order() -> None:
    ops = [{"type": "append", "path": "e", "value": "first"}, {"type": "append", "path": "e", "value": "second"}]
    assert run({"e": []}, ops) == {"e": ["first", "second"]}


def test_append_string_concatenation() -> None:
    assert run({"t": "hello"}, [{"type": "append", "path": "t", "value": " world"}]) == {"t": "hello world"}


@pytest.mark.parametrize("value", [{"not": "string"}, 1, None, ["x"]])
def test_append_non_string_to_string_is_a_type_mismatch(value: Any) -> None:
    error = fail({"t": "hello"}, [{"type": "append", "path": "t", "value": value}])
    assert error.code == "append.type_mismatch"
    assert 'append at path "t"' in error.message


@pytest.mark.parametrize("target", [{}, 3, 1.5, True])
def test_append_to_object_number_or_bool_is_a_type_mismatch(target: Any) -> None:
    assert fail({"e": target}, [{"type": "append", "path": "e", "value": "x"}]).code == "append.type_mismatch"


def test_append_to_missing_or_null_field_starts_by_value_kind() -> None:
    current: dict[str, Any] = {"s_null": None, "a_null": None}
    ops = [
        {"type": "append", "path": "s_missing", "value": "hello"},
        {"type": "append", "path": "a_missing", "value": {"kind": "chunk"}},
        {"type": "append", "path": "s_null", "value": "x"},
        {"type": "append", "path": "a_null", "value": 1},
    ]
    assert run(current, ops) == {
        "s_missing": "hello", "a_missing": [{"kind": "chunk"}], "s_null": "x", "a_null": [1],
    }


def test_append_at_root_of_missing_item_starts_from_null() -> None:
    assert run({}, [{"type": "append", "value": "hello"}], exists=False) == "hello"
    assert run({}, [{"type": "append", "path": "", "value": {"k": 1}}], exists=False) == [{"k": 1}]


def test_append_at_root_onto_existing_values() -> None:
    assert run([], [{"type": "append", "value": 1}]) == [1]
    assert run("ab", [{"type": "append", "value": "c"}]) == "abc"
    assert run(None, [{"type": "append", "value": 1}]) == [1]
    assert fail({}, [{"type": "append", "value": 1}]).code == "append.type_mismatch"


@pytest.mark.parametrize("root", ["text", [1], 3, None])
def test_append_with_path_on_non_object_root_fails(root: Any) -> None:
    assert fail(root, [{"type": "append", "path": "e", "value": 1}]).code == "append.target_not_object"
    assert fail(root, [{"type": "append", "path": ["a", "e"], "value": 1}]).code == "append.target_not_object"


def test_append_dotted_string_stays_one_literal_key() -> None:
    current = {"user.name": ["A"], "user": {"name": ["B"]}}
    assert run(current, [{"type": "append", "path": "user.name", "value": "C"}]) == {
        "user.name": ["A", "C"], "user": {"name": ["B"]},
    }


def test_append_array_path_appends_to_nested_array() -> None:
    current = {"entity": {"buffer": ["a"]}, "other": 1}
    assert run(current, [{"type": "append", "path": ["entity", "buffer"], "value": "b"}]) == {
        "entity": {"buffer": ["a", "b"]}, "other": 1,
    }


def test_nested_append_creates_intermediates_and_a_list_leaf() -> None:
    assert run({}, [{"type": "append", "path": ["entity", "buffer"], "value": "a"}], exists=False) == {
        "entity": {"buffer": ["a"]},
    }
    # A missing nested leaf is always a list, unlike a missing top-level field.
    assert run({"entity": {}}, [{"type": "append", "path": ["entity", "buffer"], "value": "x"}]) == {
        "entity": {"buffer": ["x"]},
    }


def test_nested_append_replaces_non_object_intermediates() -> None:
    assert run({"a": [1, 2]}, [{"type": "append", "path": ["a", "b"], "value": 3}]) == {"a": {"b": [3]}}
    assert run({"a": None}, [{"type": "append", "path": ["a", "b"], "value": 3}]) == {"a": {"b": [3]}}


def test_nested_append_onto_existing_leaves() -> None:
    current: dict[str, Any] = {"a": {"s": "ab", "n": None, "o": {}}}
    assert run(current, [
        {"type": "append", "path": ["a", "s"], "value": "c"},
        {"type": "append", "path": ["a", "n"], "value": "x"},
    ]) == {"a": {"s": "abc", "n": "x", "o": {}}}
    assert fail(current, [{"type": "append", "path": ["a", "o"], "value": 1}]).code == "append.type_mismatch"


def test_nested_append_rejects_proto_at_an_intermediate() -> None:
    error = fail({}, [{"type": "append", "path": ["a", "__proto__", "b"], "value": 1}])
    assert error.code == "append.path.proto_polluted"


def test_segment_paths_round_trip() -> None:
    first = run({}, [{"type": "append", "path": ["x", "y"], "value": 1}], exists=False)
    second = run(first, [{"type": "append", "path": ["x", "y"], "value": 2}])
    assert second == {"x": {"y": [1, 2]}}


# remove


def test_remove_field_and_missing_field_is_silent() -> None:
    assert run({"a": 1, "b": 2}, [{"type": "remove", "path": "a"}]) == {"b": 2}
    assert run({"b": 2}, [{"type": "remove", "path": "missing"}]) == {"b": 2}


def test_remove_root_sets_null() -> None:
    assert run({"a": 1}, [{"type": "remove", "path": ""}]) is None


@pytest.mark.parametrize("root", ["text", [1], 3, None])
def test_remove_on_non_object_root_fails(root: Any) -> None:
    assert fail(root, [{"type": "remove", "path": "a"}]).code == "remove.target_not_object"


def test_nested_remove() -> None:
    current = {"a": {"b": 1, "c": 2}}
    assert run(current, [{"type": "remove", "path": ["a", "b"]}]) == {"a": {"c": 2}}
    # A missing or null intermediate means there is nothing to remove, and nothing is created.
    assert run({"x": None}, [{"type": "remove", "path": ["x", "b"]}]) == {"x": None}
    assert run({}, [{"type": "remove", "path": ["a", "b", "c"]}]) == {}
    error = fail({"a": 5}, [{"type": "remove", "path": ["a", "b"]}])
    assert error.code == "remove.target_not_object"


# Path limits (every op)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_path_too_deep(kind: str) -> None:
    ok = [f"k{i}" for i in range(32)]
    run({}, [wire_op(kind, ok)])
    error = fail({}, [wire_op(kind, [*ok, "k32"])])
    assert error.code == f"{kind}.path.too_deep"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_path_empty_segment(kind: str) -> None:
    assert fail({}, [wire_op(kind, ["a", ""])]).code == f"{kind}.path.empty_segment"
    assert fail({}, [wire_op(kind, [""])]).code == f"{kind}.path.empty_segment"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_path_segment_too_long_counts_utf8_bytes(kind: str) -> None:
    run({}, [wire_op(kind, "é" * 128)])  # 256 bytes
    assert fail({}, [wire_op(kind, "é" * 128 + "a")]).code == f"{kind}.path.segment_too_long"
    assert fail({}, [wire_op(kind, ["a", "b" * 257])]).code == f"{kind}.path.segment_too_long"


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("sink", ["__proto__", "constructor", "prototype"])
def test_path_proto_polluted(kind: str, sink: str) -> None:
    assert fail({}, [wire_op(kind, sink)]).code == f"{kind}.path.proto_polluted"
    assert fail({}, [wire_op(kind, ["ok", sink])]).code == f"{kind}.path.proto_polluted"


def test_path_checks_apply_to_op_objects_too() -> None:
    with pytest.raises(UpdateOpError) as info:
        apply_ops({}, True, [UpdateOp.set("__proto__", 1)])
    assert info.value.code == "set.path.proto_polluted"


# All-or-nothing


def test_first_failing_op_is_reported_with_its_index() -> None:
    ops = [
        {"type": "set", "path": "ok", "value": True},
        {"type": "increment", "path": "count", "by": 1},
        {"type": "increment", "path": "bad", "by": 1},
        {"type": "set", "path": "__proto__", "value": True},
    ]
    error = fail({"bad": "value", "count": 1}, ops)
    assert (error.index, error.code) == (2, "increment.not_number")
    assert error.message == 'ops[2]: increment at path "bad": current value is a string, not a number'
    assert isinstance(error, InvalidRequest)
    assert error.to_wire() == {"code": "increment.not_number", "message": error.message}


def test_failing_update_leaves_nested_input_untouched() -> None:
    current = {"s": {"abc": {"x": [1]}, "keep": [1, 2]}, "log": ["a"], "t": "txt"}
    before = copy.deepcopy(current)
    ops = [
        UpdateOp.merge({"y": 2}, ["s", "abc"]),
        UpdateOp.append(["s", "keep"], 3),
        UpdateOp.append("log", "b"),
        UpdateOp.remove(["s", "abc"]),
        UpdateOp.set("", {"replaced": True}),
        UpdateOp.append("replaced", {"obj": 1}),
    ]
    with pytest.raises(UpdateOpError) as info:
        apply_ops(current, True, ops)
    assert info.value.index == 5
    assert current == before


def test_successful_update_leaves_input_untouched_and_copies_op_values() -> None:
    inner = [1]
    current = {"s": {"abc": {"x": inner}}, "log": ["a"], "n": 1}
    value = {"nested": {"deep": [1]}}
    ops = [
        UpdateOp.merge({"v": value}, ["s", "abc"]),
        UpdateOp.append(["s", "abc", "x"], value),
        UpdateOp.append("log", "b"),
        UpdateOp.append("log", "c"),
        UpdateOp.increment("n", 2),
        UpdateOp.set("copy", value),
    ]
    result = apply_ops(current, True, ops)
    assert current == {"s": {"abc": {"x": [1]}}, "log": ["a"], "n": 1}
    assert inner == [1]
    assert result == {
        "s": {"abc": {"x": [1, value], "v": value}}, "log": ["a", "b", "c"], "n": 3, "copy": value,
    }
    result["copy"]["nested"]["deep"].append(2)
    result["s"]["abc"]["v"]["nested"]["deep"].append(3)
    assert value == {"nested": {"deep": [1]}}
    assert result["s"]["abc"]["x"][1] == value


def test_shared_containers_in_the_input_are_copied_independently() -> None:
    shared = {"items": [1]}
    current = {"a": shared, "b": shared}
    result = apply_ops(current, True, [UpdateOp.append(["a", "items"], 2)])
    assert result == {"a": {"items": [1, 2]}, "b": {"items": [1]}}
    assert shared == {"items": [1]}


def test_no_ops_returns_an_equal_value() -> None:
    assert run({"a": 1}, []) == {"a": 1}
    assert run({}, [], exists=False) == {}


def test_basic_sequence_from_the_reference_tests() -> None:
    ops = [
        {"type": "set", "path": "name", "value": "n"},
        {"type": "increment", "path": "count", "by": 5},
        {"type": "decrement", "path": "count", "by": 2},
        {"type": "set", "path": "tmp", "value": 1},
        {"type": "remove", "path": "tmp"},
        {"type": "merge", "value": {"extra": True}},
    ]
    assert run({}, ops, exists=False) == {"name": "n", "count": 3, "extra": True}
