"""``sharpeye.heap.settle``: start-up objects leave the collector's walks; later cycles are still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sharpeye import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_the_heap_and_raises_the_young_threshold() -> None:
    before = gc.get_freeze_count()
    heap.settle()
    assert gc.get_freeze_count() > before
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD

    cycle = Node()  # made after settle(): an ordinary object, collected as usual
    ref = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert ref() is None
