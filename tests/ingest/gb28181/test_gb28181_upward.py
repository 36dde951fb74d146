"""Upward media: the upper platform INVITEs a channel SharpEye exposes; SharpEye pulls it from the device (INVITE
down), re-muxes the same access units into PS with a program stream map, sends them up over RTP, and BYE ends both."""

from __future__ import annotations

from typing import Any

import pytest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.governance.cascade import GbCascade
from sharpeye.ingest.gb28181.playback import ForwardedPlayback, forward_history
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.media import encode_clip
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from tests.helpers import env_secret
from tests.ingest.gb28181.conftest import PLATFORM_ID, UPPER_ID, device_config, until

PASSWORD = "upper-secret"


@pytest.mark.parametrize(("mode", "codec"), [("udp", "h264"), ("tcp-passive", "hevc"), ("tcp-active", "h264")])
async def test_upper_platform_watches_a_device_channel_without_reencoding(
    make_platform: Any, mode: str, codec: str
) -> None:
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await upper.start()
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper.port, "local_port": 0,
                     "password": env_secret(PASSWORD), "retry_s": 0.2}}
    )  # fmt: skip
    ipc = SimDevice(id=code("34020000", 132, 41), password="pw")
    channel = ipc.channels[0][0]
    ipc.codecs[channel] = codec
    platform = await make_platform([device_config(ipc)], settings=settings)
    fleet = DeviceFleet([ipc], platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    puller = ChannelPuller(platform, grace_s=0)
    cascade = GbCascade(settings, catalog=platform.channels, media=puller.subscribe)
    await fleet.start()
    await cascade.start()
    try:
        await until(lambda: PLATFORM_ID in upper.lowers and platform.channels())
        watch = await upper.invite(PLATFORM_ID, channel, mode=mode)  # type: ignore[arg-type]
        assert watch.status == 200 and watch.answer is not None and watch.answer.ssrc == "0100000001"
        await until(lambda: len(watch.units) >= 15, 15)
        assert {u.codec for u in watch.units} == {codec}  # from our program stream map
        clip = {data for data, _ in encode_clip("intrusion", codec, 320, 180, 4.0).frames}
        assert all(u.data in clip for u in watch.units), "access units changed on the way (re-encoded?)"
        assert watch.units[0].key
        assert len(fleet.invites) == 1
        assert await upper.bye(watch) == 200
        await until(lambda: not cascade.streams and not fleet.streams)  # released down to the device too
        assert cascade.stats["upstream.closed.bye"] == 1
    finally:
        await cascade.stop()
        await puller.stop()
        await fleet.stop()
        await upper.stop()


async def test_upper_platform_invite_for_an_unknown_channel_gets_404(make_platform: Any) -> None:
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await upper.start()
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper.port, "local_port": 0,
                     "password": env_secret(PASSWORD), "retry_s": 0.2}}
    )  # fmt: skip
    platform = await make_platform([], settings=settings)
    puller = ChannelPuller(platform, grace_s=0)
    cascade = GbCascade(settings, catalog=platform.channels, media=puller.subscribe)
    await cascade.start()
    try:
        await until(lambda: PLATFORM_ID in upper.lowers)
        watch = await upper.invite(PLATFORM_ID, code("34020000", 131, 999))
        assert watch.status == 404 and cascade.stats["invite.unavailable.unknown_channel"] == 1
    finally:
        await cascade.stop()
        await puller.stop()
        await upper.stop()


async def test_upper_platform_playback_is_forwarded_to_the_device_with_its_mansrtsp(make_platform: Any) -> None:
    """The upper platform's Playback INVITE for a device channel is forwarded (s=Playback with the same t= range to
    the device), the recording's access units go up unchanged, a PAUSE from above reaches the device, and BYE from
    above ends the device's session too."""
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await upper.start()
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper.port, "local_port": 0,
                     "password": env_secret(PASSWORD), "retry_s": 0.2}}
    )  # fmt: skip
    ipc = SimDevice(id=code("34020000", 132, 44), password="pw")
    channel = ipc.channels[0][0]
    platform = await make_platform([device_config(ipc)], settings=settings)
    fleet = DeviceFleet([ipc], platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    puller = ChannelPuller(platform, grace_s=0)

    async def history(channel_id: str, offer: Any) -> ForwardedPlayback:
        return await forward_history(platform, channel_id, offer)

    cascade = GbCascade(settings, catalog=platform.channels, media=puller.subscribe, history=history)
    await fleet.start()
    await cascade.start()
    try:
        await until(lambda: PLATFORM_ID in upper.lowers and platform.channels())
        span = (1796605200, 1796605200 + 600)
        watch = await upper.invite(PLATFORM_ID, channel, session="Playback", time=span, ssrc="1100000001")
        assert watch.status == 200
        assert fleet.invites[-1].session == "Playback" and fleet.invites[-1].time == span
        assert fleet.invites[-1].uri == f"{channel}:0"
        await until(lambda: len(watch.units) >= 10, 15)
        clip = {data for data, _ in encode_clip("intrusion", "h264", 320, 180, 4.0).frames}
        assert all(u.data in clip for u in watch.units), "access units changed on the way"
        control = next(iter(fleet.controls.values()))
        assert await upper.info(watch, "PAUSE MANSRTSP/1.0\r\nCSeq: 1\r\nPauseTime: now\r\n\r\n") == 200
        await until(lambda: control.paused, 5)
        await until(lambda: cascade.stats["info.forwarded"] == 1, 5)
        assert await upper.bye(watch) == 200
        await until(lambda: not cascade.streams and not fleet.streams)  # released down to the device too
    finally:
        await cascade.stop()
        await puller.stop()
        await fleet.stop()
        await upper.stop()
