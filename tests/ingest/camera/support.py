"""Helpers of the camera tests: a collecting ``emit`` and a poll with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sharpeye.ingest.reading import Reading

SCENARIOS = ("intrusion", "loitering", "tamper")


class Collector:
    """The ``emit`` callback of a ``CameraService`` under test."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def __call__(self, readings: list[Reading]) -> None:
        self.readings.extend(readings)

    def of(self, device: str, kind: str | None = None) -> list[Reading]:
        return [r for r in self.readings if r.device_id == device and (kind is None or r.kind == kind)]

    def firsts(self, device: str) -> list[Reading]:
        """First emission of each episode (repeats left out)."""
        return [r for r in self.of(device) if r.attrs.get("repeat") == 0]


async def wait_until(predicate: Callable[[], bool], within: float, step: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``within`` seconds pass; returns its last value."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()
