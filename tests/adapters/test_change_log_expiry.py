"""Embedded stores drop change-log entries past their age even for groups nobody writes any more (bounded memory)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streamhub.adapters.file import FileAdapter
from streamhub.adapters.memory import MemoryAdapter
from streamhub.core.model import ItemRef
from streamhub.core.positions import LogLimits, Position


async def _idle_group_log_expires(adapter: MemoryAdapter) -> None:
    await adapter.start(lambda event: None)
    try:
        for i in range(10):
            await adapter.set(ItemRef("s", "quiet", f"i{i}"), i)
        position = (await adapter.snapshot("s", "quiet", None))[1]
        assert await adapter.replay("s", "quiet", Position(position.epoch, 5)) is not None
        assert len(adapter._histories[("s", "quiet")].log) == 10
        await asyncio.sleep(0.4)  # four times the age: the sweeper must have run, with no write to the group
        assert len(adapter._histories[("s", "quiet")].log) == 0
        assert await adapter.replay("s", "quiet", Position(position.epoch, 5)) is None  # so: a fresh snapshot
        assert (await adapter.snapshot("s", "quiet", None))[1] == position  # the offsets themselves are kept
    finally:
        await adapter.close()


async def test_memory_store_expires_idle_logs() -> None:
    await _idle_group_log_expires(MemoryAdapter(LogLimits(size=100, age=0.1)))


async def test_file_store_expires_idle_logs(tmp_path: Path) -> None:
    await _idle_group_log_expires(FileAdapter(tmp_path / "data", limits=LogLimits(size=100, age=0.1)))
