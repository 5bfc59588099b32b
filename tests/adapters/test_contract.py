"""The adapter contract (``adapters/base.py``), run against every adapter: memory, file and redis.

One suite, one set of expectations: whatever the backend, a stream function must behave the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamhub.core.model import CUSTOM, Change, ItemRef, StreamEvent
from streamhub.core.update_ops import parse_ops
from streamhub.errors import UpdateOpError
from tests.adapters.conftest import Store

# Names that would break a naive key layout: separators, glob characters, hash tags, digits that look like
# length prefixes, unicode.
TRICKY = ["plain", "a:b", "a", "b:c", "*", "x*y?[z]", "{tag}", "3:abc", "ü:é/%2F", "s p a c e", "a:b:c"]


def shape(event: StreamEvent) -> tuple[Any, ...]:
    return event.stream, event.group, event.item, event.kind, event.data, event.custom_type


def ops(*raw: dict[str, Any]) -> Any:
    return parse_ops(list(raw))


async def test_set_get_and_the_changes_they_report(store: Store) -> None:
    ref = ItemRef("todos", "user_1", "t1")
    await store.adapter.watch("todos", "user_1")
    assert await store.adapter.get(ref) == (False, None)
    first = await store.adapter.set(ref, {"title": "milk"})
    second = await store.adapter.set(ref, {"title": "bread"})
    assert (first.existed, first.old, first.new) == (False, None, {"title": "milk"})
    assert (second.existed, second.old, second.new) == (True, {"title": "milk"}, {"title": "bread"})
    assert await store.adapter.get(ref) == (True, {"title": "bread"})
    delivered = await store.events(2)
    assert [shape(e) for e in delivered] == [("todos", "user_1", "t1", "create", {"title": "milk"}, None),
                                             ("todos", "user_1", "t1", "update", {"title": "bread"}, None)]
    assert delivered == [first.event, second.event]  # the very events the writes reported, timestamps included


async def test_stored_null_is_an_existing_item(store: Store) -> None:
    ref = ItemRef("s", "g", "i")
    await store.adapter.watch("s", "g")
    await store.adapter.set(ref, None)
    assert await store.adapter.get(ref) == (True, None)
    again = await store.adapter.set(ref, 0)
    assert (again.existed, again.old) == (True, None)
    assert [e.kind for e in await store.events(2)] == ["create", "update"]
    assert await store.adapter.list_items("s", "g") == [0]


async def test_delete_reports_old_value_and_missing_delete_changes_nothing(store: Store) -> None:
    ref = ItemRef("s", "g", "i")
    await store.adapter.watch("s", "g")
    assert await store.adapter.delete(ref) == Change(False, None, None, None)
    await store.adapter.set(ref, [1, 2])
    removed = await store.adapter.delete(ref)
    assert (removed.existed, removed.old, removed.new) == (True, [1, 2], None)
    assert await store.adapter.get(ref) == (False, None)
    assert await store.adapter.delete(ref) == Change(False, None, None, None)
    assert [shape(e) for e in await store.events(2)] == [("s", "g", "i", "create", [1, 2], None),
                                                        ("s", "g", "i", "delete", [1, 2], None)]
    await store.quiet(2)


async def test_events_and_custom_events_arrive_in_commit_order(store: Store) -> None:
    await store.adapter.watch("chat", "room")
    expected = []
    for n in range(20):
        ref = ItemRef("chat", "room", f"m{n % 3}")
        if n % 4 == 3:
            await store.adapter.send(StreamEvent("chat", "room", None if n % 8 == 3 else ref.item, CUSTOM,
                                                 {"n": n}, "typing"))
            expected.append(("chat", "room", None if n % 8 == 3 else ref.item, CUSTOM, {"n": n}, "typing"))
        else:
            change = await store.adapter.set(ref, {"n": n})
            assert change.event is not None
            expected.append(shape(change.event))
    assert [shape(e) for e in await store.events(20)] == expected


async def test_update_creates_from_empty_object_then_updates(store: Store) -> None:
    ref = ItemRef("counters", "g", "c")
    await store.adapter.watch("counters", "g")
    created = await store.adapter.update(ref, ops({"type": "increment", "path": "n", "by": 2}))
    updated = await store.adapter.update(ref, ops({"type": "set", "path": "label", "value": "x"},
                                                  {"type": "decrement", "path": "n", "by": 5}))
    assert (created.existed, created.old, created.new) == (False, None, {"n": 2})
    assert (updated.existed, updated.old, updated.new) == (True, {"n": 2}, {"n": -3, "label": "x"})
    delivered = await store.events(2)
    assert [(e.kind, e.data) for e in delivered] == [("create", {"n": 2}), ("update", {"n": -3, "label": "x"})]
    assert delivered == [created.event, updated.event]


async def test_failed_update_stores_and_emits_nothing(store: Store) -> None:
    ref = ItemRef("s", "g", "i")
    await store.adapter.watch("s", "g")
    await store.adapter.set(ref, {"count": 1, "title": "t"})
    with pytest.raises(UpdateOpError) as failure:
        await store.adapter.update(ref, ops({"type": "increment", "path": "count", "by": 1},
                                            {"type": "increment", "path": "title", "by": 1}))
    assert failure.value.code == "increment.not_number" and failure.value.index == 1
    with pytest.raises(UpdateOpError):  # on a missing item nothing is created either
        await store.adapter.update(ItemRef("s", "g", "new"), ops({"type": "append", "path": "", "value": 1},
                                                                 {"type": "set", "path": "x", "value": 1}))
    assert await store.adapter.list_items("s", "g") == [{"count": 1, "title": "t"}]
    await store.events(1)
    await store.quiet(1)


@pytest.mark.parametrize(("start", "raw_ops", "expected"), [
    ({"tags": []}, [{"type": "append", "path": "tags", "value": "a"}], {"tags": ["a"]}),
    ({"empty": [], "obj": {}}, [{"type": "set", "path": "x", "value": []}], {"empty": [], "obj": {}, "x": []}),
    ({"n": 2**63 - 2}, [{"type": "increment", "path": "n", "by": 1}], {"n": 2**63 - 1}),
    ({"f": 0.1}, [{"type": "increment", "path": "f", "by": 1}], {"f": 1.1}),
    ({"a": {"b": 1}}, [{"type": "merge", "path": ["a", "c"], "value": {"d": [None, True]}}],
     {"a": {"b": 1, "c": {"d": [None, True]}}}),
    ({"s": "ab", "gone": 1}, [{"type": "append", "path": "s", "value": "ü\"\\"}, {"type": "remove", "path": "gone"}],
     {"s": "abü\"\\"}),
    ("root", [{"type": "set", "path": "", "value": None}], None),
])
async def test_update_ops_give_the_same_result_everywhere(store: Store, start: Any, raw_ops: list[Any],
                                                          expected: Any) -> None:
    ref = ItemRef("s", "g", "i")
    await store.adapter.set(ref, start)
    change = await store.adapter.update(ref, parse_ops(raw_ops))
    assert change.new == expected and change.old == start
    assert await store.adapter.get(ref) == (True, expected)


async def test_values_round_trip_exactly(store: Store) -> None:
    values: list[Any] = [{}, [], "", 0, -1.5, 2**64 - 1, -(2**63), 1e300, True, False, None, "é\u2028\"\\/",
                         {"nested": [{"a": []}, {"b": {}}], "k:*": "v"}, [[[[[]]]]]]
    for n, value in enumerate(values):
        await store.adapter.set(ItemRef("s", "g", f"v{n}"), value)
    assert await store.adapter.list_items("s", "g") == values
    for n, value in enumerate(values):
        found, got = await store.adapter.get(ItemRef("s", "g", f"v{n}"))
        assert found and got == value and type(got) is type(value)


async def test_list_is_in_first_creation_order(store: Store) -> None:
    for item in ["c", "a", "b"]:
        await store.adapter.set(ItemRef("s", "g", item), item)
    await store.adapter.set(ItemRef("s", "g", "c"), "c2")  # re-setting keeps the position
    assert await store.adapter.list_items("s", "g") == ["c2", "a", "b"]
    await store.adapter.delete(ItemRef("s", "g", "a"))
    await store.adapter.update(ItemRef("s", "g", "a"), ops({"type": "set", "path": "v", "value": 1}))
    assert await store.adapter.list_items("s", "g") == ["c2", "b", {"v": 1}]  # deleted + recreated: last
    assert await store.adapter.list_items("s", "unknown") == []


async def test_groups_and_streams_follow_writes_and_deletes(store: Store) -> None:
    for stream, group in [("s1", "g2"), ("s1", "g1"), ("s2", "g1"), ("s1", "g3")]:
        await store.adapter.set(ItemRef(stream, group, "i"), 1)
    assert await store.adapter.list_groups("s1") == ["g2", "g1", "g3"]
    assert await store.adapter.list_all() == {"s1": ["g1", "g2", "g3"], "s2": ["g1"]}
    await store.adapter.delete(ItemRef("s1", "g2", "i"))
    await store.adapter.delete(ItemRef("s2", "g1", "i"))
    assert await store.adapter.list_groups("s1") == ["g1", "g3"]
    assert await store.adapter.list_groups("s2") == []
    assert await store.adapter.list_all() == {"s1": ["g1", "g3"]}
    await store.adapter.set(ItemRef("s1", "g2", "i"), 2)
    assert await store.adapter.list_groups("s1") == ["g1", "g3", "g2"]
    assert await store.adapter.list_groups("nope") == []


async def test_names_are_stored_and_matched_literally(store: Store) -> None:
    refs = [ItemRef(stream, group, item) for stream in TRICKY for group in TRICKY[:6] for item in ("*", "i:1")]
    for n, ref in enumerate(refs):
        await store.adapter.set(ref, n)
    for n, ref in enumerate(refs):
        assert await store.adapter.get(ref) == (True, n)
    assert await store.adapter.list_items("a", "b:c") == [refs.index(ItemRef("a", "b:c", i)) for i in ("*", "i:1")]
    assert await store.adapter.list_items("a:b", "*") == [refs.index(ItemRef("a:b", "*", i)) for i in ("*", "i:1")]
    assert await store.adapter.list_items("*", "a:b") != await store.adapter.list_items("*", "a")
    for stream in TRICKY:
        assert await store.adapter.list_groups(stream) == TRICKY[:6]
    assert await store.adapter.list_all() == {stream: sorted(TRICKY[:6]) for stream in sorted(TRICKY)}
    assert await store.adapter.list_groups("x*") == [] and await store.adapter.list_items("a", "b:*") == []


async def test_concurrent_writers_each_see_a_distinct_old_value(store: Store) -> None:
    ref = ItemRef("s", "g", "i")
    changes = await asyncio.gather(*(store.adapter.set(ref, n) for n in range(40)))
    olds = [change.old for change in changes]
    assert sorted(olds, key=lambda old: -1 if old is None else old) == [None, *sorted(
        set(range(40)) - {(await store.adapter.get(ref))[1]})]
    assert sum(not change.existed for change in changes) == 1


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    ref = ItemRef("s", "g", "i")
    increment = ops({"type": "increment", "path": "n", "by": 1}, {"type": "append", "path": "log", "value": 0})
    await asyncio.gather(*(store.adapter.update(ref, increment) for _ in range(60)))
    _, value = await store.adapter.get(ref)
    assert value == {"n": 60, "log": [0] * 60}
