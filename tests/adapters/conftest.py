"""The ``store`` fixture: one started adapter of each kind (memory, file, redis, redis-cluster: a real 3-primary
Redis Cluster) behind the same harness.

Events may reach the listener later than the write returns (Redis delivers them from its subscription), so
tests read them with ``await store.events(n)``. Every adapter is told to ``watch`` a group before events of it
are expected; embedded adapters deliver everything anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.file import FileAdapter
from streamhub.adapters.memory import MemoryAdapter
from streamhub.adapters.redis import RedisAdapter
from streamhub.core.model import StreamEvent
from tests.helpers import timeout


class Store:
    """A started adapter plus what it delivered."""

    def __init__(self, kind: str, adapter: StreamAdapter) -> None:
        self.kind = kind
        self.adapter = adapter
        self.delivered: list[StreamEvent] = []
        self.gaps: list[tuple[str, str]] = []
        self._arrived = asyncio.Event()

    async def start(self) -> Store:
        await self.adapter.start(self._on_event, lambda stream, group: self.gaps.append((stream, group)))
        return self

    async def events(self, count: int, wait: float = 5.0) -> list[StreamEvent]:
        """The first ``count`` events delivered, waiting for them to arrive."""
        async with asyncio.timeout(timeout(wait)):
            while len(self.delivered) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.delivered[:count]

    async def quiet(self, count: int, wait: float = 0.2) -> None:
        """Assert that no more than ``count`` events arrive within ``wait`` seconds."""
        await asyncio.sleep(wait)
        assert len(self.delivered) == count, self.delivered[count:]

    def _on_event(self, event: StreamEvent) -> None:
        self.delivered.append(event)
        self._arrived.set()


def make_adapter(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StreamAdapter:
    if kind == "memory":
        return MemoryAdapter()
    if kind == "file":
        return FileAdapter(tmp_path / "data")
    server = request.getfixturevalue("redis_cluster" if kind == "redis-cluster" else "redis_server")
    return RedisAdapter(server.url, request.getfixturevalue("key_prefix"))


@pytest.fixture(params=["memory", "file", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis-cluster", marks=pytest.mark.redis_cluster)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    harness = await Store(request.param, make_adapter(request.param, request, tmp_path)).start()
    try:
        yield harness
    finally:
        await harness.adapter.close()
