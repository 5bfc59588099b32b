"""An adapter wrapper that reports each operation's latency to the metrics seam.

Why a wrapper: every adapter (and any test adapter) is timed the same way without touching its code, and an
engine without metrics never builds it, so the store path then has no extra await.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from streamhub.adapters.base import EventListener, GapListener, StreamAdapter
from streamhub.core.metrics import Metrics
from streamhub.core.model import Change, ItemRef, StreamEvent
from streamhub.core.positions import Position
from streamhub.core.update_ops import UpdateOp

__all__ = ["TimedAdapter"]

T = TypeVar("T")


class TimedAdapter:
    """``StreamAdapter`` that forwards to ``inner`` and reports ``adapter_op(name, seconds)`` per call."""

    def __init__(self, inner: StreamAdapter, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self._metrics.adapter_op(operation, time.perf_counter() - started)

    async def start(self, listener: EventListener, on_gap: GapListener | None = None) -> None:
        await self.inner.start(listener, on_gap)

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, ref: ItemRef) -> tuple[bool, Any]:
        return await self._timed("get", self.inner.get(ref))

    async def set(self, ref: ItemRef, value: Any) -> Change:
        return await self._timed("set", self.inner.set(ref, value))

    async def delete(self, ref: ItemRef) -> Change:
        return await self._timed("delete", self.inner.delete(ref))

    async def update(self, ref: ItemRef, ops: Sequence[UpdateOp]) -> Change:
        return await self._timed("update", self.inner.update(ref, ops))

    async def list_items(self, stream: str, group: str) -> list[Any]:
        return await self._timed("list", self.inner.list_items(stream, group))

    async def list_groups(self, stream: str) -> list[str]:
        return await self._timed("list_groups", self.inner.list_groups(stream))

    async def list_all(self) -> dict[str, list[str]]:
        return await self._timed("list_all", self.inner.list_all())

    async def send(self, event: StreamEvent) -> StreamEvent:
        return await self._timed("send", self.inner.send(event))

    async def snapshot(self, stream: str, group: str, item: str | None) -> tuple[Any, Position]:
        return await self._timed("snapshot", self.inner.snapshot(stream, group, item))

    async def replay(self, stream: str, group: str, since: Position) -> tuple[list[StreamEvent], Position] | None:
        return await self._timed("replay", self.inner.replay(stream, group, since))

    async def watch(self, stream: str, group: str) -> None:
        await self._timed("watch", self.inner.watch(stream, group))

    async def unwatch(self, stream: str, group: str) -> None:
        await self._timed("unwatch", self.inner.unwatch(stream, group))


_check: type[StreamAdapter] = TimedAdapter
