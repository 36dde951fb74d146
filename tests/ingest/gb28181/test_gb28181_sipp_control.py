"""Real SIPp as the upper platform controls a channel through SharpEye: its PTZCmd turns the simulated device's head
(forwarded to the device that owns the channel), a PTZCmd with a wrong checksum is refused with 400, and its stop
stops the head; sipp's exit code judges SharpEye's answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sharpeye.config.gb28181 import GbSettings
from sharpeye.governance.cascade import GbCascade
from sharpeye.governance.cascade_control import UpwardControl
from sharpeye.ingest.gb28181.control import GbControl
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from tests.ingest.gb28181.conftest import PLATFORM_ID, device_config, until
from tests.ingest.gb28181.test_gb28181_sipp import SCENARIOS, _cascade_settings, _free_udp_port, _run


async def test_sipp_upper_platform_turns_a_device_channel(make_platform: Any, tmp_path: Path) -> None:
    port = _free_udp_port()
    settings: GbSettings = _cascade_settings(port, "upper-secret")
    ipc = SimDevice(id=code("34020000", 132, 61), password="pw")
    channel = ipc.channels[0][0]
    platform = await make_platform([device_config(ipc)], settings=settings)
    fleet = DeviceFleet([ipc], platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    control = GbControl(platform)
    upward = UpwardControl(lambda: control, platform.channels)
    await fleet.start()
    await until(lambda: platform.channels())
    args: list[str | bytes] = ["-sf", str(SCENARIOS / "upper_ptz.xml"), "-m", "1", "-p", str(port),
                               "-key", "channel", channel, "-timeout", "20s", "-timeout_error"]  # fmt: skip
    run = asyncio.ensure_future(_run(args, tmp_path))
    cascade = GbCascade(settings, catalog=platform.channels, control=upward)
    await asyncio.sleep(0.3)  # let sipp bind before the first REGISTER
    await cascade.start()
    head = ipc.control.head(channel)
    try:
        code_, err = await run
        assert code_ == 0, err
        await until(lambda: len(head.commands) == 2)  # right, then stop: the malformed one never went down
        assert head.commands == ["A50F010180000036", "A50F0100000000B5"]
        assert head.position()["pan"] > 0 and not head.moving
        assert upward.stats["upward.bad_ptzcmd.bad_checksum"] == 1
    finally:
        await cascade.stop(unregister=False)
        await control.stop()
        await fleet.stop()
