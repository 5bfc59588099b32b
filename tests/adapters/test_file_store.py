"""FileAdapter: data survives close/reopen and SIGKILL, torn tails, compaction, group commit, events, failures."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamhub.adapters.file import SNAPSHOT, FileAdapter
from streamhub.adapters.memory import MemoryAdapter
from streamhub.core.model import ItemRef, StreamEvent
from streamhub.errors import AdapterError

CHILD = Path(__file__).with_name("file_store_child.py")
STREAM, GROUP = "s:/%ü 1", "g:*/é"  # the child's names
NAMES = ["a", "a:b", "x/y%2F", "ünï:cödé", "s p a c e", "*", "stream:a:b"]


async def opened(path: Path, listener: Callable[[StreamEvent], None] | None = None, *,
                 compact_bytes: int = 64 * 1024 * 1024) -> FileAdapter:
    adapter = FileAdapter(path, compact_bytes=compact_bytes)
    await adapter.start(listener or (lambda event: None))
    return adapter


async def reopened(adapter: FileAdapter, path: Path, compact_bytes: int = 64 * 1024 * 1024) -> FileAdapter:
    await adapter.close()
    return await opened(path, compact_bytes=compact_bytes)


async def state(adapter: MemoryAdapter) -> dict[str, Any]:
    """Everything the public read API shows, orders included."""
    streams = await adapter.list_all()
    return {stream: {group: await adapter.list_items(stream, group) for group in await adapter.list_groups(stream)}
            for stream in streams} | {"__all__": streams}


def journals(path: Path) -> list[Path]:
    return sorted(path.glob("journal-*.log"))


Op = tuple[str, ItemRef, Any]


def random_ops(seed: int, count: int) -> list[Op]:
    rng = random.Random(seed)
    ops: list[Op] = []
    for n in range(count):
        ref = ItemRef(rng.choice(NAMES[:4]), rng.choice(NAMES), f"i{rng.randrange(12)}:{rng.choice(NAMES)}")
        kind = "del" if rng.random() < 0.3 else "set"
        ops.append((kind, ref, {"n": n, "item": ref.item, "nested": [n, None, "é"]}))
    return ops


async def apply(adapter: MemoryAdapter, ops: list[Op], concurrency: int) -> None:
    """Run ``ops`` in chunks of concurrent writes; the apply order is still the list order."""
    for start in range(0, len(ops), concurrency):
        await asyncio.gather(*(adapter.set(ref, value) if kind == "set" else adapter.delete(ref)
                               for kind, ref, value in ops[start:start + concurrency]))


# Close and reopen


async def test_names_values_and_order_survive_reopen(tmp_path: Path) -> None:
    adapter = await opened(tmp_path / "new" / "dir")  # created if missing
    for stream in NAMES:
        for group in NAMES:
            for item in ["first", "b:/%", "ü", "last"]:
                await adapter.set(ItemRef(stream, group, item), {"item": item, "where": [stream, group]})
    ref = ItemRef("a:b", "x/y%2F", "first")
    await adapter.set(ref, "overwritten keeps its place")
    await adapter.delete(ItemRef("a:b", "x/y%2F", "b:/%"))
    await adapter.delete(ItemRef("a:b", "x/y%2F", "ü"))
    await adapter.set(ItemRef("a:b", "x/y%2F", "ü"), "recreated goes last")
    await adapter.set(ItemRef("null", "g", "i"), None)
    for item in ["first", "b:/%", "ü", "last"]:
        await adapter.delete(ItemRef("*", "*", item))  # an emptied group disappears
    before = await state(adapter)
    adapter = await reopened(adapter, tmp_path / "new" / "dir")
    assert await state(adapter) == before
    assert await adapter.list_items("a:b", "x/y%2F") == ["overwritten keeps its place", {"item": "last", "where": [
        "a:b", "x/y%2F"]}, "recreated goes last"]
    assert await adapter.get(ItemRef("null", "g", "i")) == (True, None)
    assert "*" not in await adapter.list_groups("*")
    assert (await adapter.list_all())["stream:a:b"] == sorted(NAMES)
    await adapter.close()


@pytest.mark.parametrize("compact_bytes", [64 * 1024 * 1024, 600])
async def test_random_writes_match_memory_after_reopen(tmp_path: Path, compact_bytes: int) -> None:
    ops = random_ops(seed=compact_bytes, count=600)
    reference = MemoryAdapter()
    await apply(reference, ops, concurrency=1)
    adapter = await opened(tmp_path, compact_bytes=compact_bytes)
    await apply(adapter, ops, concurrency=25)
    expected = await state(reference)
    assert await state(adapter) == expected
    adapter = await reopened(adapter, tmp_path, compact_bytes=compact_bytes)
    assert await state(adapter) == expected
    await apply(adapter, ops[:100], concurrency=25)  # appending after a reopen (and compacting again)
    await apply(reference, ops[:100], concurrency=1)
    adapter = await reopened(adapter, tmp_path, compact_bytes=compact_bytes)
    assert await state(adapter) == await state(reference)
    if compact_bytes < 1000:
        assert (tmp_path / SNAPSHOT).exists() and len(journals(tmp_path)) == 1
    await adapter.close()


async def test_update_is_durable(tmp_path: Path) -> None:
    from streamhub.core.update_ops import parse_ops

    try:
        ops = parse_ops([{"type": "set", "path": "a", "value": 1}, {"type": "increment", "path": "n", "by": 2}])
        adapter = await opened(tmp_path)
        change = await adapter.update(ItemRef("s", "g", "i"), ops)
    except NotImplementedError:
        pytest.skip("update_ops is not written yet")
    assert change.new == {"a": 1, "n": 2}
    adapter = await reopened(adapter, tmp_path)
    assert await adapter.get(ItemRef("s", "g", "i")) == (True, {"a": 1, "n": 2})
    await adapter.close()


# Events and group commit


async def test_events_reach_the_listener_in_apply_order(tmp_path: Path) -> None:
    ops = random_ops(seed=7, count=300)
    seen: list[StreamEvent] = []
    expected: list[StreamEvent] = []
    reference = MemoryAdapter()
    await reference.start(expected.append)
    await apply(reference, ops, concurrency=1)
    adapter = await opened(tmp_path, seen.append, compact_bytes=2000)
    await apply(adapter, ops, concurrency=50)
    await adapter.close()

    def key(event: StreamEvent) -> tuple[Any, ...]:
        return event.stream, event.group, event.item, event.kind, event.data

    assert [key(event) for event in seen] == [key(event) for event in expected]
    assert {event.kind for event in seen} == {"create", "update", "delete"}


async def test_concurrent_writers_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = await opened(tmp_path)
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    await asyncio.gather(*(adapter.set(ItemRef("s", "g", f"i{n}"), n) for n in range(200)))
    assert 1 <= len(calls) < 20, f"{len(calls)} fsyncs for 200 concurrent writes"
    calls.clear()
    for n in range(5):
        await adapter.set(ItemRef("s", "g", f"seq{n}"), n)
    assert len(calls) == 5  # a lone writer is not kept waiting for company
    await adapter.close()


# Damaged files


@pytest.mark.parametrize("tail", [
    b'1234abcd ["set","s","g","half',  # a record cut short
    b'00000000 ["set","s","g","x",1]\n',  # a whole line with a wrong checksum
    b"\x00" * 300,  # blocks allocated but never written
    b"\n\n",
])
async def test_torn_tail_is_dropped(tmp_path: Path, tail: bytes) -> None:
    adapter = await opened(tmp_path)
    for n in range(10):
        await adapter.set(ItemRef("s", "g", f"i{n}"), n)
    await adapter.close()
    with journals(tmp_path)[-1].open("ab") as journal:
        journal.write(tail)
    adapter = await opened(tmp_path)
    assert await adapter.list_items("s", "g") == list(range(10))
    await adapter.set(ItemRef("s", "g", "after"), "ok")  # appended after the truncated tail
    adapter = await reopened(adapter, tmp_path)
    assert await adapter.list_items("s", "g") == [*range(10), "ok"]
    await adapter.close()


async def test_leftovers_of_a_crash_during_compaction_are_ignored(tmp_path: Path) -> None:
    adapter = await opened(tmp_path, compact_bytes=200)
    for n in range(30):
        await adapter.set(ItemRef("s", "g", f"i{n}"), n)
    await adapter.close()
    [journal] = journals(tmp_path)
    assert journal.name != "journal-000000000001.log"
    (tmp_path / "snapshot.tmp").write_bytes(b"half a snapshot")  # killed before os.replace
    (tmp_path / "journal-000000000001.log").write_bytes(b"an old generation the snapshot covers")  # before unlink
    adapter = await opened(tmp_path, compact_bytes=200)
    assert await adapter.list_items("s", "g") == list(range(30))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["LOCK", journal.name, SNAPSHOT]
    await adapter.close()


async def test_corruption_before_good_lines_is_an_error(tmp_path: Path) -> None:
    adapter = await opened(tmp_path)
    for n in range(10):
        await adapter.set(ItemRef("s", "g", f"i{n}"), n)
    await adapter.close()
    path = journals(tmp_path)[-1]
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"i2", b"i7")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(AdapterError, match=rf"{path.name}: line 3 is corrupt \(checksum mismatch\)"):
        await opened(tmp_path)
    await (await opened(tmp_path / "other")).close()  # the failed start released its lock and files


async def test_a_second_opener_is_refused(tmp_path: Path) -> None:
    adapter = await opened(tmp_path)
    with pytest.raises(AdapterError, match="already open"):
        await opened(tmp_path)
    await adapter.close()
    await (await opened(tmp_path)).close()


async def test_non_json_value_is_refused_untouched(tmp_path: Path) -> None:
    adapter = await opened(tmp_path)
    with pytest.raises(AdapterError, match="not JSON"):
        await adapter.set(ItemRef("s", "g", "i"), {"bad": object()})
    assert await adapter.get(ItemRef("s", "g", "i")) == (False, None)
    await adapter.set(ItemRef("s", "g", "i"), 1)
    await adapter.close()
    with pytest.raises(AdapterError, match="not open"):
        await adapter.set(ItemRef("s", "g", "j"), 1)


# Real crashes and real write failures (child processes)


def child(mode: str, directory: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(CHILD), mode, str(directory), *args], stdout=subprocess.PIPE)


def kill_after(proc: subprocess.Popen[bytes], reports: int) -> list[list[Any]]:
    """Read ``reports`` lines, SIGKILL the child mid-stream, and return every complete line it printed."""
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(reports)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines += proc.stdout.read().splitlines(keepends=True)
    assert len(lines) >= reports and lines[reports - 1].endswith(b"\n"), "the child died early"
    return [orjson.loads(line) for line in lines if line.endswith(b"\n")]


@pytest.mark.parametrize("compact_bytes", ["67108864", "4096"])
async def test_sigkill_mid_stream_keeps_every_acknowledged_write(tmp_path: Path, compact_bytes: str) -> None:
    acknowledged: dict[str, Any] = {}  # item -> value, None once its delete was acknowledged
    in_flight: set[str] = set()  # items whose delete had started when the child was killed
    for run, reports in enumerate([400, 1500, 900]):  # each run recovers what the previous kill left
        for kind, item, value in kill_after(child("stream", tmp_path, compact_bytes, f"run{run}/"), reports):
            if kind == "deleting":
                in_flight.add(item)
            else:
                acknowledged[item] = value if kind == "set" else None
                in_flight.discard(item)
    adapter = await opened(tmp_path, compact_bytes=int(compact_bytes))
    assert await adapter.list_all() == {STREAM: [GROUP]}
    for item, value in acknowledged.items():
        expected = (False, None) if value is None else (True, value)
        allowed = [expected, (False, None)] if item in in_flight else [expected]
        assert await adapter.get(ItemRef(STREAM, GROUP, item)) in allowed, item
    stored = await adapter.list_items(STREAM, GROUP)  # plus writes that landed but were not acknowledged yet
    assert len(stored) >= sum(value is not None and item not in in_flight for item, value in acknowledged.items())
    await adapter.close()


async def test_sigkill_right_after_acknowledgement(tmp_path: Path) -> None:
    assert kill_after(child("burst", tmp_path), reports=1) == [["done", 500, None]]
    adapter = await opened(tmp_path)
    assert await adapter.list_items(STREAM, GROUP) == [{"n": n} for n in range(500)]
    await adapter.close()


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
async def test_write_failure_is_reported_and_the_store_recovers(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(CHILD), "efbig", str(tmp_path)], capture_output=True, timeout=20)
    assert proc.returncode == 0, proc.stderr.decode()
    [[_, result, _]] = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert result == {"big": "AdapterError temporary=True", "while_failed": "AdapterError temporary=True",
                      "after": "ok", "events": ["before", "after"]}
    adapter = await opened(tmp_path)
    assert await adapter.get(ItemRef(STREAM, GROUP, "before")) == (True, 1)
    assert await adapter.get(ItemRef(STREAM, GROUP, "after")) == (True, 2)
    # The failed writes stayed in memory, so the recovery snapshot made them durable (outcome "unknown").
    assert await adapter.get(ItemRef(STREAM, GROUP, "big")) == (True, "y" * 1000)
    await adapter.close()
