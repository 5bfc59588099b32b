"""Freeze what survives a full garbage collection once it is many objects, so later ones stop rescanning it.

An idle subscribed connection holds ~75 GC-tracked objects that live as long as it. Python's full collections
rescan every one of them (about 0.5 µs each on the bench machine: 0.75 s per collection at 20,000 connections,
about 3.8 s estimated at 100,000), and nothing is delivered meanwhile; while connections arrive, the heap grows
by a quarter again and again, so they come back ever larger. Right after a full collection everything still
tracked is alive; when that is at least ``min_survivors`` objects (a burst of accepts), :class:`SurvivorFreezer`
moves them to the permanent generation (``gc.freeze``): the next full collection scans only what came after.

Frozen objects are freed by reference counting only. Closed connections are (``transport/sockets.release``
breaks aiohttp's cycles; tests/integration/test_connection_garbage.py keeps it so), but something else that
dies in a cycle after being frozen would stay. So once the objects frozen since the last thaw outnumber
``turnover`` times the frozen heap (most of it has died and been replaced since), the heap is thawed: the next
full collection scans all of it once, frees any such garbage, and freezes again. That costs one collection of
the live heap per ``turnover`` heaps of churn, where Python by itself rescans the heap each time it grows by 25%.
"""

from __future__ import annotations

import gc
from typing import Any

__all__ = ["SurvivorFreezer"]


class SurvivorFreezer:
    """A ``gc.callbacks`` hook that freezes the survivors of large full collections.

    Args:
        min_survivors: freeze after a full collection only when at least this many objects survived it (below
            that a full collection costs at most a few milliseconds, and transient objects stay collectable).
        turnover: thaw once this many frozen heaps' worth of objects have been frozen since the last thaw.
    """

    def __init__(self, min_survivors: int = 20_000, turnover: float = 2.0) -> None:
        self._min = min_survivors
        self._turnover = turnover
        self._since_thaw = 0  # objects frozen since the last thaw
        self.freezes = 0
        self.thaws = 0

    def install(self) -> None:
        """Run after every collection; first in the list, so other callbacks that time a collection include it."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.insert(0, self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        if self._since_thaw > self._turnover * gc.get_freeze_count():
            gc.unfreeze()  # the next full collection sweeps everything once, then freezes it again
            self._since_thaw = 0
            self.thaws += 1
            return
        survivors = len(gc.get_objects(generation=2))  # after a full collection: every unfrozen tracked object
        if survivors >= self._min:
            gc.freeze()
            self._since_thaw += survivors
            self.freezes += 1
