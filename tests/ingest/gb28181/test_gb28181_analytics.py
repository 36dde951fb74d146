"""Analytics and evidence on a GB/T 28181 channel: the camera service reads a gb28181: camera through the puller
(pulled continuously), the intrusion scenario streamed by the device simulator as PS over RTP raises the intrusion
alarm, and its evidence clip is the device's own bitstream remuxed, decodable; H.264 and H.265."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import av
import pytest
from sharpeye.ingest.camera.evidence import EvidenceError
from sharpeye.ingest.camera.service import CameraService
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.ingest.gb28181.source import opener
from sharpeye.ingest.transport.video.source import register_opener
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.gb28181.device import SimDevice, code
from sharpeye.simulators.gb28181.media import MediaFaults, encode_clip

from sharpeye.clock import ManualClock
from tests.ingest.camera.support import Collector, wait_until
from tests.ingest.gb28181.test_gb28181_media import _online


@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_intrusion_on_a_gb_channel_raises_the_alarm_with_a_decodable_clip(
    make_platform: Any, tmp_path: Path, codec: str
) -> None:
    scenario = builtin("intrusion")
    ipc = SimDevice(
        id=code("34020000", 132, 71), password="pw", media_size=(640, 360), media_seconds=scenario.duration_s
    )
    channel = ipc.channels[0][0]
    ipc.codecs[channel] = codec
    # the simulator encodes its clip once (H.265 at 640x360 takes seconds under load): before the camera opens
    await asyncio.to_thread(encode_clip, "intrusion", codec, 640, 360, scenario.duration_s)
    platform, fleet = await _online(make_platform, [ipc])
    puller = ChannelPuller(platform, grace_s=0)
    puller.bind(asyncio.get_running_loop())
    register_opener("gb28181:", opener(puller))
    config = scenario.camera_config("cam-gb", f"gb28181:{ipc.id}/{channel}")
    collector = Collector()
    service = CameraService([config], tmp_path, collector, ManualClock(), workers=1)
    await service.start()
    try:
        assert await wait_until(
            lambda: bool(collector.of("cam-gb", "video.intrusion")), within=scenario.duration_s + 10
        )
        stats = service.stats()[0]
        assert stats.codec == codec and (stats.width, stats.height) == (640, 360) and stats.state == "live"
        assert puller.pulled == [(channel, 0)]  # held by the camera service: pulled continuously
        reading = next(r for r in collector.of("cam-gb", "video.intrusion") if r.evidence)
        _, mp4_ref = reading.evidence

        def written() -> bool:  # the clip is written post_s after the alarm
            try:
                return service.evidence_path(mp4_ref).stat().st_size > 0
            except EvidenceError:
                return False

        assert await wait_until(written, within=config.evidence.post_s + 10)
        with av.open(str(service.evidence_path(mp4_ref))) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == codec
            frames = sum(1 for p in container.demux(stream) if p.size for _ in p.decode())
        assert frames >= 20
        assert not collector.of("cam-gb", "video.loss")
    finally:
        await service.stop()
        register_opener("gb28181:", None)
        await puller.stop()
        await fleet.stop()


async def test_a_stalled_gb_channel_raises_video_loss_and_restores(make_platform: Any, tmp_path: Path) -> None:
    ipc = SimDevice(id=code("34020000", 132, 72), password="pw", faults=MediaFaults(stall_after_s=2.0, stall_s=5.0))
    platform, fleet = await _online(make_platform, [ipc], media_timeout_s=3.0)
    puller = ChannelPuller(platform, grace_s=0)
    puller.bind(asyncio.get_running_loop())
    register_opener("gb28181:", opener(puller))
    config = builtin("intrusion").camera_config("cam-stall", f"gb28181:{ipc.id}/{ipc.channels[0][0]}")
    config = config.model_copy(update={"loss_after_s": 1.0, "repeat_s": 1.5})
    collector = Collector()
    service = CameraService([config], tmp_path, collector, ManualClock(), workers=1, backoff_max=1.0)
    await service.start()
    try:
        assert await wait_until(lambda: bool(collector.of("cam-stall", "video.loss")), within=10)
        assert collector.of("cam-stall", "video.loss")[0].value == "alarm"
        # capture gave up on the silent session (read timeout): it was released with BYE and pulled anew
        assert await wait_until(lambda: fleet.stats["byes"] >= 1 and len(fleet.invites) >= 2, within=10)
        # the stall ends (the device streams again to a new INVITE): the loss restores
        assert await wait_until(
            lambda: any(r.value == "restore" for r in collector.of("cam-stall", "video.loss")), within=15
        )
    finally:
        await service.stop()
        register_opener("gb28181:", None)
        await puller.stop()
        await fleet.stop()
