"""SharpEye as a GB/T 28181 platform, driven by the device simulator over real UDP and TCP sockets."""

from __future__ import annotations

from typing import Any

from sharpeye.ingest.credential import device_password
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.manscdp import build
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from sharpeye.clock import ManualClock
from tests.ingest.gb28181.conftest import PLATFORM_ID, Sink, device_config, until


def _fleet(platform: GbPlatform, devices: list[SimDevice], **kwargs: Any) -> DeviceFleet:
    return DeviceFleet(devices, platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1, **kwargs)


async def test_devices_register_and_report_catalog_in_pages(make_platform: Any, sink: Sink) -> None:
    ipc = SimDevice(id=code("34020000", 132, 1), password="pw-ipc-1")
    nvr = SimDevice(id=code("34020000", 118, 2), password="pw-nvr-2", kind="nvr", channel_count=16, catalog_page=3)
    platform = await make_platform([device_config(ipc), device_config(nvr)])
    fleet = _fleet(platform, [ipc, nvr])
    await fleet.start()
    try:
        await until(lambda: len(platform.channels()) == 17 and all(s["manufacturer"] for s in platform.devices_state()))
        states = {s["id"]: s for s in platform.devices_state()}
        assert states[nvr.id]["registered"] and states[nvr.id]["online"]
        assert states[nvr.id]["channels"] == 16
        assert states[nvr.id]["model"] == "SIM-NVR"
        names = {c.channel_id: c.name for c in platform.channels()}
        assert names == dict(ipc.channels + nvr.channels)  # Chinese names decoded from GB2312
        online = sink.of("device.online")
        assert {r.device_id for r in online if r.value is True} == {ipc.id, nvr.id}
        # 16 channels in pages of 3 arrive as 6 messages, merged by (device, CmdType, SN)
        assert platform.stats["catalogs"] == 2
    finally:
        await fleet.stop()


async def test_wrong_password_is_refused_with_403(make_platform: Any) -> None:
    dev = SimDevice(id=code("34020000", 132, 7), password="right")
    platform = await make_platform([device_config(dev)])
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev, password="wrong") == 403
        assert platform.stats["register.wrong_password"] == 1
        assert not platform.devices_state()[0]["registered"]
        assert await fleet.register(dev) == 200
        assert platform.devices_state()[0]["registered"]
    finally:
        await fleet.stop()


async def test_without_an_own_password_the_derived_one_is_checked(make_platform: Any) -> None:
    secret = "site-device-secret-0123456789"
    dev = SimDevice(id=code("34020000", 132, 21), password=device_password(secret, code("34020000", 132, 21), "sip"))
    config = GbDeviceConfig.model_validate({"id": dev.id, "kind": "gb28181", "name": "x", "grid": "g1"})
    platform = await make_platform([config], device_secret=secret)
    unset = await make_platform([config])  # no device secret and no password of its own: nobody gets in
    fleet, lost = _fleet(platform, [dev]), _fleet(unset, [dev])
    await fleet.endpoint.start()
    await lost.endpoint.start()
    try:
        assert await fleet.register(dev, password=device_password(secret, dev.id, "mqtt")) == 403
        assert await fleet.register(dev) == 200
        assert platform.devices_state()[0]["registered"]
        assert await lost.register(dev) == 403
        assert unset.stats["register.no_password"] == 1
    finally:
        await fleet.stop()
        await lost.stop()


async def test_unknown_device_and_unregistered_messages_are_refused(make_platform: Any) -> None:
    known = SimDevice(id=code("34020000", 132, 8), password="pw")
    stranger = SimDevice(id=code("34020000", 132, 9), password="pw")
    platform = await make_platform([device_config(known)])
    fleet = _fleet(platform, [known, stranger])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(stranger) == 403
        assert await fleet.keepalive(known) == 403  # not registered yet: messages are not authenticated
        assert platform.stats["register.unknown_device"] == 1
    finally:
        await fleet.stop()


async def test_alarm_becomes_reading_and_is_answered(make_platform: Any, sink: Sink) -> None:
    dev = SimDevice(id=code("34020000", 132, 11), password="pw")
    platform = await make_platform([device_config(dev)])
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        channel = dev.channels[0][0]
        status = await fleet.alarm(
            dev.id,
            priority=2,
            method=5,
            alarm_type=6,
            description="区域入侵 & 翻越",
            channel=channel,
            position=(117.2, 31.8),
        )
        assert status == 200
        await sink.wait_for(lambda: sink.of("gb28181.alarm"))
        (reading,) = sink.of("gb28181.alarm")
        assert reading.device_id == dev.id and reading.channel == channel and reading.value == "alarm"
        assert reading.attrs["priority"] == 2 and reading.attrs["method"] == 5 and reading.attrs["type"] == 6
        assert reading.attrs["description"] == "区域入侵 & 翻越"
        assert reading.attrs["position"] == {"longitude": 117.2, "latitude": 31.8}
        assert reading.ts.tzinfo is not None
        await until(lambda: dev.alarm_acks)  # the platform's Response/Alarm reached the device
    finally:
        await fleet.stop()


async def test_keepalive_timeout_then_back_online(make_platform: Any, sink: Sink) -> None:
    clock = ManualClock()
    dev = SimDevice(id=code("34020000", 132, 12), password="pw", keepalive_s=10)
    platform = await make_platform([device_config(dev, offline_after=3)], clock=clock)
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        assert await fleet.keepalive(dev) == 200
        clock.advance(25)
        platform.check_liveness()
        assert platform.devices_state()[0]["online"]
        clock.advance(10)  # 35 s > 3 x 10 s without a keepalive
        platform.check_liveness()
        assert not platform.devices_state()[0]["online"]
        assert [r.value for r in sink.of("device.online")] == [True, False]
        assert await fleet.keepalive(dev) == 200
        assert platform.devices_state()[0]["online"]
        assert [r.value for r in sink.of("device.online")] == [True, False, True]
        assert sink.of("device.online")[-1].attrs["reason"] == "keepalive"
    finally:
        await fleet.stop()


async def test_expires_zero_unregisters(make_platform: Any, sink: Sink) -> None:
    dev = SimDevice(id=code("34020000", 132, 13), password="pw")
    platform = await make_platform([device_config(dev)])
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        assert await fleet.register(dev, expires=0) == 200
        state = platform.devices_state()[0]
        assert not state["registered"] and not state["online"]
        assert [r.attrs["reason"] for r in sink.of("device.online")] == ["register", "unregister"]
    finally:
        await fleet.stop()


async def test_malformed_body_is_refused_and_counted(make_platform: Any) -> None:
    dev = SimDevice(id=code("34020000", 132, 14), password="pw")
    rejected: list[tuple[str, str, bytes]] = []
    platform = await make_platform([device_config(dev)], reject=lambda *args: rejected.append(args))
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        dev.malformed_keepalive = True
        assert await fleet.keepalive(dev) == 400
        assert platform.stats["bad_body.bad_xml"] == 1
        ((reason, device_id, raw),) = rejected
        assert (reason, device_id) == ("bad_body.bad_xml", dev.id) and raw.startswith(b"MESSAGE sip:")
        dev.malformed_keepalive = False
        assert await fleet.keepalive(dev) == 200
    finally:
        await fleet.stop()


async def test_device_status_query_and_subscription_over_tcp(make_platform: Any) -> None:
    dev = SimDevice(id=code("34020000", 132, 15), password="pw")
    platform = await make_platform([device_config(dev)])
    fleet = _fleet(platform, [dev], transport="tcp")
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        assert platform.devices_state()[0]["transport"] == "tcp"
        status = await platform.query_device_status(dev.id)
        assert status["online"] == "ONLINE" and status["result"] == "OK"
        assert await platform.subscribe(dev.id, "Catalog") == 200
        assert fleet.stats["subscribed"] == 1
    finally:
        await fleet.stop()


async def test_media_url_from_config_reaches_channel(make_platform: Any) -> None:
    dev = SimDevice(id=code("34020000", 132, 16), password="pw")
    url = "rtsp://127.0.0.1:8554/cam16"
    platform = await make_platform([device_config(dev, channels=[{"id": dev.channels[0][0], "media_url": url}])])
    fleet = _fleet(platform, [dev])
    await fleet.start()
    try:
        await until(lambda: platform.channels())
        assert platform.channels()[0].media_url == url
    finally:
        await fleet.stop()


async def test_incomplete_catalog_is_kept_and_asked_again(make_platform: Any, settings: Any) -> None:
    clock = ManualClock()
    dev = SimDevice(id=code("34020000", 118, 17), password="pw", kind="nvr", channel_count=4, catalog_overcount=2)
    quick = settings.model_copy(update={"query_timeout_s": 0.5, "catalog_retry_s": 30})
    platform = await make_platform([device_config(dev)], settings=quick, clock=clock)
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        await until(lambda: platform.device(dev.id).catalog_due is not None)
        state = platform.device(dev.id)
        assert len(state.channels) == 4 and not state.catalog_complete  # SumNum 6, 4 items sent
        assert platform.stats["catalogs_partial"] == 1
        asked = len([q for q in fleet.queries if q.cmd_type == "Catalog"])
        clock.advance(31)
        platform.check_liveness()
        await until(lambda: len([q for q in fleet.queries if q.cmd_type == "Catalog"]) == asked + 1)
        await until(lambda: platform.stats["catalogs_partial"] == 2)
    finally:
        await fleet.stop()


async def test_catalog_change_notifications_and_run_time_devices(make_platform: Any) -> None:
    dev = SimDevice(id=code("34020000", 118, 18), password="pw", kind="nvr", channel_count=2)
    platform = await make_platform([])
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 403  # not configured yet
        platform.add_device(device_config(dev))
        assert await fleet.register(dev) == 200
        await until(lambda: len(platform.channels()) == 2)
        gone, kept = dev.channels[0][0], dev.channels[1][0]
        new = code("34020000", 131, 9_999_999)
        change = build(
            "Notify",
            "Catalog",
            99,
            dev.id,
            [("SumNum", 3)],
            device_list=(
                "DeviceList",
                [
                    [("DeviceID", gone), ("Event", "DEL")],
                    [("DeviceID", kept), ("Event", "OFF")],
                    [("DeviceID", new), ("Name", "新增通道"), ("Event", "ADD")],
                ],
            ),
        )
        assert await fleet.message(dev, change) == 200
        channels = {c.channel_id: c for c in platform.channels()}
        assert set(channels) == {kept, new}
        assert not channels[kept].online and channels[new].name == "新增通道"
        platform.remove_device(dev.id)
        assert await fleet.keepalive(dev) == 403
    finally:
        await fleet.stop()


async def test_a_keepalive_listing_faulty_channels_turns_them_off_and_back_on(make_platform: Any) -> None:
    """GB/T 28181-2016's Keepalive lists the device's faulty channels under <Info>: each goes OFF while listed and
    comes back ON when a later keepalive no longer lists it; a channel the device's catalog set OFF stays OFF."""
    dev = SimDevice(id=code("34020000", 118, 19), password="pw", kind="nvr", channel_count=3)
    platform = await make_platform([device_config(dev)])
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        await until(lambda: len(platform.channels()) == 3)
        broken, fine, off_by_catalog = (c for c, _ in dev.channels)

        def online() -> dict[str, bool]:
            return {c.channel_id: c.online for c in platform.channels()}

        change = build("Notify", "Catalog", 98, dev.id, [("SumNum", 1)],
                       device_list=("DeviceList", [[("DeviceID", off_by_catalog), ("Event", "OFF")]]))  # fmt: skip
        assert await fleet.message(dev, change) == 200
        dev.faulty_channels = [broken, off_by_catalog, code("34020000", 131, 7_777_777)]  # the last: not its channel
        assert await fleet.keepalive(dev) == 200
        assert online() == {broken: False, fine: True, off_by_catalog: False}
        assert platform.stats["keepalive_faulty_channels"] == 1
        assert await fleet.keepalive(dev) == 200  # listed again: nothing more
        assert platform.stats["keepalive_faulty_channels"] == 1
        dev.faulty_channels = []
        assert await fleet.keepalive(dev) == 200
        assert online() == {broken: True, fine: True, off_by_catalog: False}
    finally:
        await fleet.stop()
