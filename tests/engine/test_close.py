"""Stopping the engine always ends: a part that hangs while closing is named in a WARNING and left behind."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from streamhub.adapters.memory import MemoryAdapter
from streamhub.adapters.presence import MemoryPresence
from streamhub.core.model import ItemRef
from streamhub.engine.engine import Engine


class HangingPresence(MemoryPresence):
    """The fault: a presence store whose close never returns (a Redis that stops answering mid-stop)."""

    async def close(self) -> None:
        await asyncio.Event().wait()


class ClosingAdapter(MemoryAdapter):
    closed = False

    async def close(self) -> None:
        await super().close()
        ClosingAdapter.closed = True


async def test_a_part_that_hangs_while_closing_does_not_stop_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    adapter = ClosingAdapter()
    engine = Engine(adapter, presence=HangingPresence())
    await engine.start()
    await engine.call("stream.set", {"stream_name": "s", "group_id": "g", "item_id": "i", "data": 1})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="streamhub.engine.engine"):
        await engine.close()
    took = time.monotonic() - started
    assert 2.5 < took < 5.0, took  # the presence step's 3 s, then the rest at once
    assert ClosingAdapter.closed  # the store after it was still closed
    assert [r.getMessage() for r in caplog.records] == ["stopping: presence did not close within 3 s; going on"]
    assert await adapter.get(ItemRef("s", "g", "i")) == (True, 1)
