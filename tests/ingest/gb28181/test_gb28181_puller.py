"""On-demand pulling: shared INVITE, release after the grace period, capture through a gb28181: camera URL."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.gb28181.puller import ChannelPuller, parse_url
from sharpeye.ingest.gb28181.source import opener
from sharpeye.ingest.transport.video.capture import Capture
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.source import register_opener
from sharpeye.simulators.gb28181.device import SimDevice, code

from tests.ingest.gb28181.conftest import until
from tests.ingest.gb28181.test_gb28181_media import _online


async def test_viewers_share_one_pull_released_after_grace(make_platform: Any) -> None:
    nvr = SimDevice(id=code("34020000", 118, 11), password="pw", kind="nvr", channel_count=2)
    channel = nvr.channels[0][0]
    platform, fleet = await _online(make_platform, [nvr])
    puller = ChannelPuller(platform, grace_s=0.5)
    try:
        url = f"gb28181:{nvr.id}/{channel}"
        a, b = await asyncio.gather(puller.subscribe(url), puller.subscribe(channel))
        assert len(fleet.invites) == 1 and puller.pulled == [(channel, 0)]  # one INVITE for both
        assert a.info is not None and (a.info.codec, a.info.width, a.info.height) == ("h264", 320, 180)
        first = await asyncio.wait_for(a.get(), 5)
        assert first.key
        await asyncio.wait_for(b.get(), 5)
        a.close()
        await asyncio.sleep(0.8)  # past the grace period: b still watches, nothing released
        assert puller.pulled and not fleet.stats["byes"]
        b.close()
        c = await puller.subscribe(url)  # back within the grace period: the same pull
        assert len(fleet.invites) == 1
        c.close()
        await until(lambda: fleet.stats["byes"] == 1, 5)  # released with BYE after the grace period
        assert not puller.pulled and puller.stats["released"] == 1
        d = await puller.subscribe(url, stream_number=1)  # a new pull, sub stream asked in the SDP
        assert len(fleet.invites) == 2 and fleet.invites[-1].stream_number == 1
        d.close()
    finally:
        await puller.stop()
        await fleet.stop()


async def test_a_gb28181_camera_url_is_captured_like_rtsp(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 12), password="pw", codecs={})
    ipc.codecs[ipc.channels[0][0]] = "hevc"
    platform, fleet = await _online(make_platform, [ipc])
    puller = ChannelPuller(platform, grace_s=0)
    puller.bind(asyncio.get_running_loop())
    register_opener("gb28181:", opener(puller))
    camera = CameraConfig(
        id="cam-gb", kind="camera", name="GB", grid="g1", url=f"gb28181:{ipc.id}/{ipc.channels[0][0]}"
    )
    infos: list[StreamInfo] = []
    packets: list[VideoPacket] = []
    errors: list[str] = []
    got = threading.Event()

    def on_packet(packet: VideoPacket) -> None:
        packets.append(packet)
        if len(packets) >= 20:
            got.set()

    capture = Capture(camera, infos.append, on_packet, lambda reason, _: errors.append(reason))
    capture.start()
    try:
        assert await asyncio.to_thread(got.wait, 20)
        assert infos[0].codec == "hevc" and (infos[0].width, infos[0].height) == (320, 180)
        assert packets[0].key and all(p.generation == 1 for p in packets)
        assert not errors
    finally:
        capture.stop()
        await asyncio.to_thread(capture.join, 5)
        register_opener("gb28181:", None)
        await until(lambda: not puller.pulled, 5)  # the capture let go: released
        await puller.stop()
        await fleet.stop()


def test_gb28181_urls() -> None:
    assert parse_url("gb28181:34020000001180000011/34020000001310000001?stream=1") == (
        "34020000001180000011",
        "34020000001310000001",
        1,
    )
    assert parse_url("gb28181:34020000001310000001") == ("", "34020000001310000001", 0)
    for bad in ("gb28181:abc/def", "gb28181:1234/34020000001310000001"):
        try:
            parse_url(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
