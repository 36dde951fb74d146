"""Pulling a GB/T 28181 channel: INVITE/ACK/BYE over real SIP, PS over real RTP (UDP, TCP both ways), H.264/H.265."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import av
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.gb28181.metric import GbMediaCollector
from sharpeye.ingest.gb28181.platform import GbPlatform, MediaError
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.ingest.transport.ps import AccessUnit
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.media import MediaFaults

from tests.ingest.gb28181.conftest import PLATFORM_ID, device_config, until


def _settings(**extra: Any) -> GbSettings:
    return GbSettings(sip_id=PLATFORM_ID, port=0, sip_t1_s=0.1, query_timeout_s=5, media_port_min=0,
                      media_port_max=0, **extra)  # fmt: skip


async def _online(
    make_platform: Any, devices: list[SimDevice], *, sip: str = "udp", **settings: Any
) -> tuple[GbPlatform, DeviceFleet]:
    platform = await make_platform([device_config(d) for d in devices], settings=_settings(**settings))
    fleet = DeviceFleet(devices, platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1, transport=sip)  # type: ignore[arg-type]
    await fleet.start()
    await until(lambda: all(len(platform.device(d.id).channels) == len(d.channels) for d in devices))
    return platform, fleet


class Units:
    def __init__(self) -> None:
        self.units: list[AccessUnit] = []

    def __call__(self, unit: AccessUnit) -> None:
        self.units.append(unit)


@pytest.mark.parametrize(
    ("mode", "sip", "codec"),
    [("udp", "udp", "h264"), ("udp", "udp", "hevc"), ("tcp-passive", "tcp", "h264"), ("tcp-active", "udp", "hevc")],
)
async def test_channel_is_pulled_demuxed_and_released(make_platform: Any, mode: str, sip: str, codec: str) -> None:
    nvr = SimDevice(id=code("34020000", 118, 3), password="pw", kind="nvr", channel_count=2)
    channel = nvr.channels[1][0]
    nvr.codecs[channel] = codec
    platform, fleet = await _online(make_platform, [nvr], sip=sip)
    try:
        session = await platform.invite(channel, transport=mode, stream_number=1)  # type: ignore[arg-type]
        got = Units()
        session.add_consumer(got)
        await until(lambda: len(got.units) >= 30, 15)
        assert got.units[0].key and {u.codec for u in got.units} == {codec}
        assert fleet.invites[-1].stream_number == 1 and fleet.invites[-1].transport == (
            "udp" if mode == "udp" else "tcp"
        )
        assert fleet.stats["acks"] == 1
        decoder = av.CodecContext.create(codec, "r")
        frames = [f for u in got.units for f in decoder.decode(av.Packet(u.data))]
        assert len(frames) >= 25 and (frames[0].width, frames[0].height) == (320, 180)
        assert session.receiver.lost == 0
        assert platform.media_state()[0]["channel_id"] == channel
        await session.close()
        await until(lambda: not fleet.streams)  # BYE reached the device and it stopped sending
        assert fleet.stats["byes"] == 1 and not platform.sessions
    finally:
        await fleet.stop()


async def test_loss_and_reordering_are_counted_and_frames_keep_coming(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 4), password="pw", faults=MediaFaults(loss=0.02, reorder=0.1))
    platform, fleet = await _online(make_platform, [ipc])
    try:
        session = await platform.invite(ipc.channels[0][0])
        got = Units()
        session.add_consumer(got)
        await until(lambda: len(got.units) >= 40 and session.receiver.lost > 0, 20)
        assert session.receiver.reorder.reordered > 0
        assert session.stats["resync_after_loss"] > 0
        decoder = av.CodecContext.create("h264", "r")
        decoded = 0
        for unit in got.units:
            with contextlib.suppress(av.FFmpegError):
                decoded += len(decoder.decode(av.Packet(unit.data)))
        assert decoded >= 20
    finally:
        await fleet.stop()


async def test_stall_and_never_started_streams_end_the_session(make_platform: Any) -> None:
    stalls = SimDevice(id=code("34020000", 132, 5), password="pw", faults=MediaFaults(stall_after_s=0.5, stall_s=30))
    silent = SimDevice(id=code("34020000", 132, 6), password="pw", faults=MediaFaults(never_start=True))
    platform, fleet = await _online(make_platform, [stalls, silent], media_timeout_s=1, media_start_timeout_s=1)
    try:
        a = await platform.invite(stalls.channels[0][0])
        b = await platform.invite(silent.channels[0][0])
        async with asyncio.timeout(10):
            await a.closed.wait()
            await b.closed.wait()
        assert (a.close_reason, b.close_reason) == ("stalled", "never_started")
        assert platform.stats["media.closed.stalled"] == 1 and platform.stats["media.closed.never_started"] == 1
        await until(lambda: not fleet.streams)  # both got BYE
    finally:
        await fleet.stop()


async def test_refused_unknown_and_bad_answers_raise_counted_errors(make_platform: Any) -> None:
    busy = SimDevice(id=code("34020000", 132, 7), password="pw", refuse_invite=486)
    odd = SimDevice(id=code("34020000", 132, 8), password="pw", answer_sdp=b"v=0\r\no=x 0 0 IN IP4 127.0.0.1\r\n")
    platform, fleet = await _online(make_platform, [busy, odd], max_media_sessions=1)
    try:
        with pytest.raises(MediaError) as info:
            await platform.invite(busy.channels[0][0])
        assert info.value.reason == "refused_486"
        with pytest.raises(MediaError) as info:
            await platform.invite(odd.channels[0][0])
        assert info.value.reason == "bad_sdp.no_media"
        await until(lambda: fleet.stats["byes"] == 1)  # the dialog the bad answer opened was ended
        with pytest.raises(MediaError) as info:
            await platform.invite("34020000001310009999")
        assert info.value.reason == "unknown_channel"
        assert platform.stats["invite.refused_486"] == 1 and platform.stats["invite.unknown_channel"] == 1
        assert not platform.sessions
        registry = CollectorRegistry()
        registry.register(GbMediaCollector(platform, ChannelPuller(platform), lambda: (0, Counter())))
        text = generate_latest(registry).decode()
        assert 'sharpeye_gb_media_events_total{event="invite.refused_486",side="platform"} 1.0' in text
        assert 'sharpeye_gb_media_events_total{event="invite.bad_sdp.no_media",side="platform"} 1.0' in text
        assert 'sharpeye_gb_media_sessions{side="pulled"} 0.0' in text
    finally:
        await fleet.stop()


async def test_media_address_and_port_range_come_from_settings(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 9), password="pw")
    platform, fleet = await _online(make_platform, [ipc])
    settings = platform.settings.model_copy(
        update={"media_host": "127.0.0.2", "media_ip": "127.0.0.2", "media_port_min": 0, "media_port_max": 0}
    )
    platform.settings = settings
    try:
        session = await platform.invite(ipc.channels[0][0])
        got = Units()
        session.add_consumer(got)
        await until(lambda: len(got.units) >= 5)
        assert fleet.invites[-1].ip == "127.0.0.2" and session.receiver.host == "127.0.0.2"
        assert session.receiver.source is not None
    finally:
        await fleet.stop()


def test_port_range_hands_out_free_ports_round_robin() -> None:
    from sharpeye.ingest.transport.rtp import PortRange, RtpError

    ports = PortRange(30000, 30002)
    taken = [ports.take() for _ in range(3)]
    assert taken == [30000, 30001, 30002]
    with pytest.raises(RtpError):
        ports.take()
    ports.give(30001)
    assert ports.take() == 30001
