"""Garbage-collector settings for long-running processes (the hub, the MQTT receiver).

A full (generation 2) collection walks every tracked object. After start-up the hub holds about 160,000 of
them (FastAPI, SQLAlchemy, pydantic models, the site config), which made each full collection cost 60-200 ms
on the 2-core machine: the largest single pause on the MQTT path (docs/benchmarks.md, "MQTT ingest").
``settle()`` is called once start-up is done: it collects what start-up left, moves the survivors to the
permanent generation (``gc.freeze``), which no collection walks again, and raises the young generation's
threshold so that a burst of readings is collected in fewer, still short, passes. Cycles created later are
collected as before.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000  # allocations before a generation-0 pass (CPython's default: 700)


def settle() -> None:
    """Freeze the objects start-up created and raise the young threshold (see the module's doc)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    log.debug("heap settled: %d objects frozen", gc.get_freeze_count())
