"""The upper platform's DeviceControl and PresetQuery of SharpEye's channels reach the device that owns the channel:
PTZ turns the simulated head, presets are listed back upward, guard answers with the device's Result; a malformed
PTZCmd, an unknown channel and a reboot through SharpEye are refused with a status, nothing forwarded."""

from __future__ import annotations

from typing import Any

from sharpeye.config.gb28181 import GbSettings
from sharpeye.governance.cascade import GbCascade
from sharpeye.governance.cascade_control import UpwardControl
from sharpeye.ingest.gb28181.control import GbControl
from sharpeye.ingest.gb28181.ptz import command_for, preset_command
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from tests.helpers import env_secret
from tests.ingest.gb28181.conftest import PLATFORM_ID, UPPER_ID, device_config, until

PASSWORD = "upper-pw"


async def test_upper_platform_controls_a_device_channel_through_sharpeye(make_platform: Any) -> None:
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await upper.start()
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "query_timeout_s": 3,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper.port, "local_port": 0,
                     "password": env_secret(PASSWORD), "retry_s": 0.2}}
    )  # fmt: skip
    nvr = SimDevice(id=code("34020000", 118, 51), password="pw", kind="nvr", channel_count=2)
    platform = await make_platform([device_config(nvr)], settings=settings)
    fleet = DeviceFleet([nvr], platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    control = GbControl(platform)
    upward = UpwardControl(lambda: control, platform.channels)
    cascade = GbCascade(settings, catalog=platform.channels, control=upward)
    await fleet.start()
    await cascade.start()
    channel = nvr.channels[1][0]
    head = nvr.control.head(channel)
    try:
        await until(lambda: PLATFORM_ID in upper.lowers and len(platform.channels()) == 2)
        assert await upper.control(PLATFORM_ID, channel, [("PTZCmd", command_for("left", 200).encode())]) == 200
        await until(lambda: head.moving and head.position()["pan"] != 0)
        assert await upper.control(PLATFORM_ID, channel, [("PTZCmd", command_for("stop", 1).encode())]) == 200
        await until(lambda: not head.moving)
        assert await upper.control(PLATFORM_ID, channel, [("PTZCmd", preset_command("set", 9).encode())]) == 200
        await until(lambda: 9 in head.presets)
        pages = await upper.query(PLATFORM_ID, "PresetQuery", target=channel)
        assert [(i["presetid"], i["presetname"]) for i in pages[0].items] == [("9", "预置位9")]
        answer = await upper.query(PLATFORM_ID, "DeviceControl", target=channel, root="Control",
                                   fields=[("GuardCmd", "SetGuard")])  # fmt: skip
        assert answer[0].fields["result"] == "OK" and nvr.control.guard

        sent = len(head.commands)
        assert await upper.control(PLATFORM_ID, channel, [("PTZCmd", "A50F0100000000B6")]) == 400  # bad checksum
        assert await upper.control(PLATFORM_ID, code("34020000", 131, 4242), [("PTZCmd", "A50F0100000000B5")]) == 404
        assert await upper.control(PLATFORM_ID, channel, [("TeleBoot", "Boot")]) == 403
        assert len(head.commands) == sent and nvr.control.reboots == 0
        assert upward.stats["upward.bad_ptzcmd.bad_checksum"] == 1 and upward.stats["upward.ptz"] == 3

        nvr.answer_control = False  # the device goes silent: the upper platform gets Result ERROR, in time
        silent = await upper.query(PLATFORM_ID, "DeviceControl", target=channel, root="Control",
                                   fields=[("RecordCmd", "Record")])  # fmt: skip
        assert silent[0].fields["result"] == "ERROR" and upward.stats["upward.failed.timeout"] == 1
    finally:
        await cascade.stop()
        await control.stop()
        await fleet.stop()
        await upper.stop()
