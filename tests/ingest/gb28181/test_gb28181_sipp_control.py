"""Real SIPp as the upper platform controls a channel through SharpEye: its PTZCmd turns the simulated device's head
(forwarded to the device that owns the channel), a PTZCmd with a wrong checksum is refused with 400, and its stop
stops the head; sipp's exit code judges SharpEye's answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.rule import Severity
from sharpeye.governance.cascade import GbCascade
from sharpeye.governance.cascade_control import UpwardControl
from sharpeye.ingest.gb28181.control import GbControl
from sharpeye.ingest.gb28181.platform import Channel
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from tests.ingest.gb28181.conftest import PLATFORM_ID, device_config, until
from tests.ingest.gb28181.test_gb28181_cascade import _alarm
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


async def test_sipp_upper_platform_subscribes_to_alarms(tmp_path: Path) -> None:
    """sipp as the upper platform subscribes to priority-1 alarms (``upper_subscribe.xml``): of three alarms raised
    once the subscription is live (one of a channel outside the cascade's ``channels`` filter, one of priority 3,
    one of priority 1), only the last reaches sipp, as a NOTIFY in the dialog that sipp checks; sipp then refreshes
    the subscription and ends it, and requires the NOTIFY saying it is terminated. No alarm goes by MESSAGE."""
    port = _free_udp_port()
    settings = _cascade_settings(port, "upper-secret")
    assert settings.cascade is not None
    settings = settings.model_copy(
        update={"cascade": settings.cascade.model_copy(update={"channels": ["3402000000"]})}
    )
    channels = [Channel(device_id=PLATFORM_ID, channel_id=f"340200000013100000{i:02d}", name=f"点位{i}")
                for i in range(1, 3)]  # fmt: skip
    channel = channels[1].channel_id
    assert channel == "34020000001310000002"  # the one upper_subscribe.xml expects
    args: list[str | bytes] = ["-sf", str(SCENARIOS / "upper_subscribe.xml"), "-m", "1", "-p", str(port),
                               "-timeout", "20s", "-timeout_error"]  # fmt: skip
    run = asyncio.ensure_future(_run(args, tmp_path))
    cascade = GbCascade(settings, catalog=lambda: channels)
    await asyncio.sleep(0.3)  # let sipp bind before the first REGISTER
    await cascade.start()
    try:
        await until(lambda: cascade.live("Alarm"))
        outside = _alarm("video_intrusion", "zone-x", device_id="34020100001310000001")
        minor = _alarm("video_intrusion", "zone-b", device_id=channel).model_copy(update={"severity": Severity.minor})
        for alarm in (outside, minor, _alarm("video_intrusion", "zone-a", device_id=channel)):
            cascade.forward_alarm(alarm)
        code_, err = await run
        assert code_ == 0, err
        await until(lambda: cascade.stats["notify.Alarm.200"] == 2)  # the alarm, then the terminated one
        assert cascade.stats["alarms_filtered"] == 1 and cascade.stats["alarms_not_subscribed"] == 1
        assert cascade.stats["alarms_notified"] == 1 and cascade.stats["refreshed.Alarm"] == 1
        assert cascade.stats["unsubscribed.Alarm"] == 1 and not cascade.subscriptions
        assert not any(k.startswith("alarms_forwarded") for k in cascade.stats)
    finally:
        await cascade.stop(unregister=False)


async def test_sipp_upper_platform_subscribes_to_a_channel_position(tmp_path: Path) -> None:
    """sipp as the upper platform subscribes to the mobile position of a fixed camera every second
    (``upper_positions.xml``): it requires the 200 before any NOTIFY, two NOTIFYs with the camera's catalog position
    (and a Time, speed 0), then ends the subscription and requires the terminated NOTIFY."""
    port = _free_udp_port()
    settings = _cascade_settings(port, "upper-secret")
    channels = [
        Channel(device_id=PLATFORM_ID, channel_id="34020000001310000001", name="北门", longitude=117.283,
                latitude=31.861),
        Channel(device_id=PLATFORM_ID, channel_id="34020000001310000002", name="东门", longitude=117.3, latitude=31.9),
    ]  # fmt: skip
    args: list[str | bytes] = ["-sf", str(SCENARIOS / "upper_positions.xml"), "-m", "1", "-p", str(port),
                               "-timeout", "20s", "-timeout_error"]  # fmt: skip
    run = asyncio.ensure_future(_run(args, tmp_path))
    cascade = GbCascade(settings, catalog=lambda: channels)
    await asyncio.sleep(0.3)  # let sipp bind before the first REGISTER
    await cascade.start()
    try:
        code_, err = await run
        assert code_ == 0, err
        await until(lambda: cascade.stats["notify.MobilePosition.200"] == 3)  # two reports, then the terminated one
        assert cascade.stats["positions.catalog"] >= 2 and cascade.stats["unsubscribed.MobilePosition"] == 1
        assert not cascade.subscriptions
    finally:
        await cascade.stop(unregister=False)
