"""``SurvivorFreezer``: freezes the survivors of large full collections, and thaws once the frozen heap turned over."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streamhub.heap import SurvivorFreezer


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector can free it


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.collect()
    yield
    gc.unfreeze()


def test_a_small_heap_stays_unfrozen(thawed: None) -> None:
    freezer = SurvivorFreezer(min_survivors=10**9)
    freezer.install()
    try:
        gc.collect()
    finally:
        freezer.uninstall()
    assert freezer.freezes == 0
    assert gc.get_freeze_count() == 0


def test_survivors_are_frozen_and_a_thaw_frees_cycles_that_died_frozen(thawed: None) -> None:
    freezer = SurvivorFreezer(min_survivors=1_000, turnover=2.0)
    freezer.install()
    try:
        node = _Node()
        dead = weakref.ref(node)
        gc.collect()
        assert freezer.freezes == 1
        heap = gc.get_freeze_count()
        assert heap > 1_000
        del node
        gc.collect()
        assert dead() is not None  # frozen: a cycle that dies there waits for the thaw
        while freezer.thaws == 0:  # churn: batches that live through one full collection, frozen, then dropped
            batch: list[list[int]] = [[] for _ in range(heap // 2)]  # empty lists: GC-tracked (empty dicts are not)
            gc.collect()
            del batch
        assert freezer.freezes >= 3  # the first heap, then half a heap per batch: over two heaps frozen
        gc.collect()  # the sweep after the thaw
        assert dead() is None
        assert freezer.freezes >= 4  # and the survivors frozen again
        assert gc.get_freeze_count() > 1_000
    finally:
        freezer.uninstall()
