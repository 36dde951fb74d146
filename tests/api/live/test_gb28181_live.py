"""Live view of GB/T 28181 channels: a WebRTC viewer (aiortc) watches a channel pulled over real SIP INVITE and
real PS over RTP from the device simulator; H.264 passes through, H.265 is encoded once to H.264. When the last
viewer leaves, the channel is released with BYE after the grace period."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sharpeye.api.live.camera import device_resolver, service_resolver
from sharpeye.api.live.service import LiveService
from sharpeye.api.live.setting import LiveSettings
from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from tests.api.live.viewer import Viewer
from tests.helpers import env_secret

PLATFORM_ID = "34020000002000000001"
SETTINGS = LiveSettings(idle_stop_s=0.2, queue_packets=60)


class Site:
    """A platform, an NVR simulator with an H.264 and an H.265 channel, the puller and the live service."""

    def __init__(self) -> None:
        self.nvr = SimDevice(id=code("34020000", 118, 21), password="pw-nvr", kind="nvr", channel_count=2)
        self.h264, self.h265 = (cid for cid, _ in self.nvr.channels)
        self.nvr.codecs[self.h265] = "hevc"
        config = GbDeviceConfig.model_validate(
            {"id": self.nvr.id, "kind": "gb28181", "name": "NVR", "grid": "g1", "password": env_secret("pw-nvr")}
        )
        settings = GbSettings(sip_id=PLATFORM_ID, port=0, sip_t1_s=0.1, media_port_min=0, media_port_max=0)
        self.platform = GbPlatform(settings, [config], lambda _: None)
        self.puller = ChannelPuller(self.platform, grace_s=0.3)
        self.cameras = {}
        for cid in (self.h264, self.h265):
            url = f"gb28181:{self.nvr.id}/{cid}"
            self.cameras[f"cam-{cid[-4:]}"] = CameraConfig(
                id=f"cam-{cid[-4:]}", kind="camera", name="GB", grid="g1", url=url
            )
        self.live = LiveService(
            device_resolver(self.cameras.get, SETTINGS, gb_subscribe=self.puller.subscribe), SETTINGS
        )
        self.fleet: DeviceFleet | None = None

    async def start(self) -> None:
        await self.platform.start()
        self.fleet = DeviceFleet([self.nvr], platform_id=PLATFORM_ID, platform_port=self.platform.port, t1=0.1)
        await self.fleet.start()
        await self.live.start()
        async with asyncio.timeout(10):
            while len(self.platform.device(self.nvr.id).channels) < 2:  # noqa: ASYNC110 - catalog, polled
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.live.stop()
        await self.puller.stop()
        if self.fleet is not None:
            await self.fleet.stop()
        await self.platform.stop()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    await s.start()
    yield s
    await s.stop()


async def watch(live: LiveService, camera: str) -> Viewer:
    viewer = Viewer(read_stamps=False)

    async def answer(offer: str) -> str:
        _, sdp = await live.open(camera, offer)
        return sdp

    await viewer.connect(answer)
    return viewer


@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_gb_channel_plays_and_is_released_when_the_viewer_leaves(site: Site, codec: str) -> None:
    channel = site.h264 if codec == "h264" else site.h265
    camera = f"cam-{channel[-4:]}"
    viewer = await watch(site.live, camera)
    try:
        await asyncio.wait_for(viewer.got_frame.wait(), 4.0)  # click to first frame, INVITE included
        assert viewer.first_frame_at is not None and viewer.first_frame_at - viewer.started_at < 4.0
        frames = viewer.frames
        async with asyncio.timeout(5):
            while viewer.frames < frames + 10:  # noqa: ASYNC110 - frames advancing, polled with a deadline
                await asyncio.sleep(0.05)
        assert site.puller.pulled == [(channel, 0)]
        assert site.fleet is not None and len(site.fleet.invites) == 1
    finally:
        await viewer.close()
    fleet: Any = site.fleet
    async with asyncio.timeout(10):  # idle stop of the feed, then the grace period, then BYE
        while fleet.stats["byes"] < 1:  # noqa: ASYNC110 - state of the simulator, polled with a deadline
            await asyncio.sleep(0.05)
    assert not site.puller.pulled and not site.platform.sessions


async def test_an_h265_camera_read_by_the_camera_service_is_encoded_once_for_viewers(site: Site) -> None:
    """A GB channel the camera service analyses reaches live view through the service's subscription: H.265 there
    is encoded once, as on demand."""
    camera = f"cam-{site.h265[-4:]}"
    ready = [await site.puller.subscribe(f"gb28181:{site.nvr.id}/{site.h265}")]  # what the camera service holds

    def subscribe(camera_id: str) -> Any:
        if camera_id != camera or not ready:
            raise KeyError(camera_id)
        return ready.pop()

    fallback = device_resolver(site.cameras.get, SETTINGS, gb_subscribe=site.puller.subscribe)
    resolver = service_resolver(subscribe, fallback, SETTINGS)
    live = LiveService(resolver, SETTINGS)
    await live.start()
    viewer = await watch(live, camera)
    try:
        await asyncio.wait_for(viewer.got_frame.wait(), 6.0)
        frames = viewer.frames
        async with asyncio.timeout(5):
            while viewer.frames < frames + 10:  # noqa: ASYNC110 - frames advancing, polled with a deadline
                await asyncio.sleep(0.05)
        assert not ready  # the service's subscription was used
        assert site.fleet is not None and len(site.fleet.invites) == 1  # one pull
    finally:
        await viewer.close()
        await live.stop()
