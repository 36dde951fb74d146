"""Fixtures of the GB/T 28181 tests: a platform on a free port, its readings, device configs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.reading import Reading
from sharpeye.simulators.gb28181.device import SimDevice

from tests.helpers import env_secret

PLATFORM_ID = "34020000002000000001"
UPPER_ID = "34010000002000000001"


class Sink:
    """Collects emitted readings; ``wait_for`` polls with a deadline on each emit."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self._changed = asyncio.Event()

    def __call__(self, readings: list[Reading]) -> None:
        self.readings.extend(readings)
        self._changed.set()

    def of(self, kind: str, device_id: str | None = None) -> list[Reading]:
        return [r for r in self.readings if r.kind == kind and (device_id is None or r.device_id == device_id)]

    async def wait_for(self, predicate: Callable[[], Any], limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def until(predicate: Callable[[], Any], limit_s: float = 10.0, step: float = 0.02) -> None:
    """Poll ``predicate`` until true or fail after ``limit_s``."""
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - state of other objects, polled with a deadline
            await asyncio.sleep(step)


def device_config(sim: SimDevice, **extra: Any) -> GbDeviceConfig:
    return GbDeviceConfig.model_validate(
        {
            "id": sim.id,
            "kind": "gb28181",
            "name": sim.name,
            "grid": "g1",
            "password": env_secret(sim.password),
            "heartbeat_s": sim.keepalive_s,
            **extra,
        }
    )


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def settings() -> GbSettings:
    return GbSettings(sip_id=PLATFORM_ID, port=0, sip_t1_s=0.1, query_timeout_s=5)


@pytest.fixture
async def make_platform(sink: Sink, settings: GbSettings) -> AsyncIterator[Callable[..., Any]]:
    started: list[GbPlatform] = []

    async def make(devices: list[GbDeviceConfig], **kwargs: Any) -> GbPlatform:
        platform = GbPlatform(kwargs.pop("settings", settings), devices, sink, **kwargs)
        await platform.start()
        started.append(platform)
        return platform

    yield make
    for platform in started:
        await platform.stop()
