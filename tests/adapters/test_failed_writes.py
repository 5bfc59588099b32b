"""A write the store cannot encode fails alone: items, offsets, events, the journal and every later write are as if
it had never been tried. (Issue 10: one such value used to wedge the file store's journal for every item.)

The engine refuses such values at its edge (``core.values``); these tests call the adapters directly, past that
check, to prove the stores do not depend on it to stay consistent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import streamhub.adapters.file as file_module
from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.file import SNAPSHOT, FileAdapter
from streamhub.adapters.memory import MemoryAdapter, Record
from streamhub.adapters.redis import RedisAdapter
from streamhub.core.model import CUSTOM, ItemRef, StreamEvent
from streamhub.core.update_ops import UpdateOp
from streamhub.errors import AdapterError
from tests.adapters.conftest import Store
from tests.redis_server import RedisServer

BIG = 2**70
Write = Callable[[StreamAdapter], Awaitable[Any]]


def ref(item: str) -> ItemRef:
    return ItemRef("s", "g", item)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"d": value}
    return value


def good(n: int) -> Write:
    return lambda adapter: adapter.set(ref(f"i{n}"), {"n": n, "pad": "x" * 200})


POISONED: list[Write] = [  # each fails while encoding: orjson refuses the value (or the result of the ops)
    lambda adapter: adapter.set(ref("new"), {"x": object()}),
    lambda adapter: adapter.set(ref("i0"), [BIG]),
    lambda adapter: adapter.update(ref("i1"), [UpdateOp.set("n", BIG)]),
    lambda adapter: adapter.update(ref("i2"), [UpdateOp.set("deep", nested(300))]),  # orjson stops at 254 levels
]


def make(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> StreamAdapter:
    if kind == "file":
        return FileAdapter(tmp_path / "data", compact_bytes=2048)  # compactions run during the test
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisAdapter(server.url, request.getfixturevalue("key_prefix"))


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def mixed_writes(adapter: StreamAdapter, poisoned: list[Write]) -> list[Any]:
    """30 good writers and the poisoned ones, concurrently (one group commit may hold both)."""
    writes = [good(n)(adapter) for n in range(30)]
    return await asyncio.gather(*writes[:10], *(write(adapter) for write in poisoned), *writes[10:],
                                return_exceptions=True)


async def check_no_trace(store: Store, results: list[Any], refused: int) -> None:
    """Exactly ``refused`` writes failed; the 30 good ones hold offsets 1..30 and nothing else changed."""
    failures = [result for result in results if isinstance(result, BaseException)]
    assert len(failures) == refused, failures
    assert all(isinstance(failure, AdapterError) and "s/g" in failure.message for failure in failures), failures
    events = await store.events(30)
    await store.quiet(30)
    assert [event.offset for event in events] == list(range(1, 31))
    assert {event.item for event in events} == {f"i{n}" for n in range(30)}
    values, position = await store.adapter.snapshot("s", "g", None)
    assert position.offset == 30
    assert sorted(values, key=lambda value: value["n"]) == [{"n": n, "pad": "x" * 200} for n in range(30)]
    assert await store.adapter.get(ref("new")) == (False, None)


async def test_a_write_the_store_cannot_encode_fails_alone(kind: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    store = await Store(kind, make(kind, tmp_path, request)).start()
    await store.adapter.watch("s", "g")
    poisoned = POISONED
    if kind == "redis":  # a custom event is encoded (and numbered) by Redis; embedded stores keep none
        poisoned = [*POISONED, lambda adapter: adapter.send(StreamEvent("s", "g", None, CUSTOM, [BIG], "t"))]
    await check_no_trace(store, await mixed_writes(store.adapter, poisoned), len(poisoned))
    assert (await store.adapter.set(ref("i0"), "later")).event.offset == 31  # type: ignore[union-attr]
    assert (await store.adapter.delete(ref("i29"))).event.offset == 32  # type: ignore[union-attr]
    if kind == "file":
        assert (tmp_path / "data" / SNAPSHOT).exists()  # compaction ran, and was not wedged by the failures
    await store.adapter.close()
    again = await Store(kind, make(kind, tmp_path, request)).start()  # what was acknowledged is durable
    stored = {item: await again.adapter.get(ref(item)) for item in ("new", *(f"i{n}" for n in range(30)))}
    assert stored == {"new": (False, None), "i0": (True, "later"), "i29": (False, None),
                      **{f"i{n}": (True, {"n": n, "pad": "x" * 200}) for n in range(1, 29)}}
    await again.adapter.close()


@pytest.fixture
async def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FileAdapter]:
    """A file store whose line encoder fails for the value ``"poison"`` and for deleting the item ``locked``."""
    encode = file_module._line

    def failing(payload: Any) -> bytes:
        if payload[-1] == "poison" or payload[:1] + payload[3:4] == ["del", "locked"]:
            raise TypeError("injected encode failure")
        return encode(payload)

    adapter = FileAdapter(tmp_path / "data", compact_bytes=2048)
    await adapter.start(lambda event: None)
    monkeypatch.setattr(file_module, "_line", failing)
    try:
        yield adapter
    finally:
        await adapter.close()


async def test_an_injected_encode_failure_never_wedges_the_journal(journal: FileAdapter, tmp_path: Path) -> None:
    store = Store("file", journal)
    journal._listener = store._on_event  # collect what it delivers from here on
    await journal.set(ref("locked"), "kept")
    poisoned: list[Write] = [
        lambda adapter: adapter.set(ref("i3"), "poison"),
        lambda adapter: adapter.update(ref("i4"), [UpdateOp.set("", "poison")]),
        lambda adapter: adapter.delete(ref("locked")),
    ]
    results = await mixed_writes(journal, poisoned)
    failures = [result for result in results if isinstance(result, BaseException)]
    assert [str(failure) for failure in failures] == [
        f"cannot store s/g/{item}: value is not JSON (injected encode failure)" for item in ("i3", "i4", "locked")]
    events = await store.events(31)
    assert [event.offset for event in events] == list(range(1, 32))
    assert await journal.get(ref("locked")) == (True, "kept")
    assert await journal.get(ref("i3")) == (True, {"n": 3, "pad": "x" * 200})
    for n in range(30, 40):  # one write per group commit: the journal passes compact_bytes and is compacted
        await good(n)(journal)
    assert (tmp_path / "data" / SNAPSHOT).exists()
    assert len(await store.events(41)) == 41
    await journal.close()
    reopened = FileAdapter(tmp_path / "data")
    await reopened.start(lambda event: None)
    assert await reopened.list_items("s", "g") == ["kept", *({"n": n, "pad": "x" * 200} for n in range(40))]
    await reopened.close()


class Picky(MemoryAdapter):
    """A memory store whose ``_prepare`` hook refuses every record of the item ``locked``."""

    def _prepare(self, record: Record) -> Any:
        if record[3] == "locked":
            raise AdapterError("cannot store s/g/locked: injected")
        return super()._prepare(record)


async def test_memory_store_keeps_no_partial_state_when_a_write_is_refused() -> None:
    store = await Store("memory", Picky()).start()
    refused: list[Write] = [
        lambda adapter: adapter.set(ref("locked"), 1),
        lambda adapter: adapter.update(ref("locked"), [UpdateOp.increment("n")]),
    ]
    await check_no_trace(store, await mixed_writes(store.adapter, refused), 2)
    assert await store.adapter.list_groups("s") == ["g"]
    assert (await store.adapter.set(ref("i0"), "later")).event.offset == 31  # type: ignore[union-attr]
    await store.adapter.close()
