"""1,000 simulated devices (IPCs and 16-channel NVRs) from one process stay online on the platform."""

from __future__ import annotations

import asyncio
from typing import Any

from sharpeye.config.gb28181 import GbSettings
from sharpeye.simulators.gb28181.device import DeviceFleet, fleet_devices

from tests.ingest.gb28181.conftest import PLATFORM_ID, Sink, device_config, until

COUNT = 1000
KEEPALIVE_S = 3.0


async def test_thousand_devices_stay_online_and_alarm(make_platform: Any, sink: Sink) -> None:
    sims = fleet_devices(COUNT, keepalive_s=KEEPALIVE_S, nvr_every=50, nvr_channels=16)
    settings = GbSettings(sip_id=PLATFORM_ID, port=0)  # default timers, as deployed
    # offline after 6 missed keepalives (18 s): a loaded CI machine may delay a round, never six
    platform = await make_platform([device_config(s, offline_after=6) for s in sims], settings=settings)
    fleet = DeviceFleet(sims, platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.5)
    await fleet.start()
    try:
        await until(lambda: sum(s["online"] for s in platform.devices_state()) == COUNT, limit_s=60, step=0.1)
        expected_channels = sum(len(s.channels) for s in sims)
        await until(lambda: len(platform.channels()) == expected_channels, limit_s=60, step=0.1)
        keepalives = platform.stats["keepalives"]
        await asyncio.sleep(3 * KEEPALIVE_S)  # three keepalive rounds: the length of the test, not a race
        assert sum(s["online"] for s in platform.devices_state()) == COUNT
        assert platform.stats["keepalives"] - keepalives >= 2 * COUNT
        assert not any(r.value is False for r in sink.of("device.online"))
        nvr = next(s for s in sims if s.kind == "nvr")
        assert await fleet.alarm(nvr.id, channel=nvr.channels[3][0], priority=1, method=5, alarm_type=6) == 200
        await sink.wait_for(lambda: sink.of("gb28181.alarm"))
        assert sink.of("gb28181.alarm")[0].channel == nvr.channels[3][0]
    finally:
        await fleet.stop()
