"""Forced key frame: the puller asks a pulled channel's device for a key frame (DeviceControl IFameCmd) and the next
picture is one, instead of the one a whole group of pictures later; requests are rate-limited per channel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sharpeye.ingest.gb28181.keyframe import force_key_frame
from sharpeye.ingest.gb28181.platform import MediaError
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.simulators.gb28181.device import SimDevice, code

from tests.ingest.gb28181.conftest import until
from tests.ingest.gb28181.test_gb28181_media import _online


async def test_ifamecmd_makes_the_next_picture_a_key_frame(make_platform: Any) -> None:
    ipc = SimDevice(id=code("34020000", 132, 71), password="pw")
    channel = ipc.channels[0][0]
    platform, fleet = await _online(make_platform, [ipc])
    puller = ChannelPuller(platform, grace_s=0)
    try:
        assert not puller.request_key_frame(channel)  # not pulled: nothing to ask
        sub = await puller.subscribe(channel)
        packets = [await asyncio.wait_for(sub.get(), 5) for _ in range(12)]
        gop = next(i for i, p in enumerate(packets[1:], 1) if p.key)  # the device's own key-frame interval
        assert gop >= 8, f"the clip's groups of pictures are {gop} frames"
        while not (await asyncio.wait_for(sub.get(), 5)).key:  # just past a key frame: the next is a GOP away
            pass
        await asyncio.wait_for(sub.get(), 5)
        assert puller.request_key_frame(f"gb28181:{ipc.id}/{channel}")
        assert not puller.request_key_frame(channel)  # a second one within a second is throttled
        await until(lambda: fleet.key_frame_requests[channel] == 1 and puller.stats["keyframe.sent"] == 1)
        waited = 0
        while not (await asyncio.wait_for(sub.get(), 5)).key:
            waited += 1
        assert waited <= 3, f"{waited} pictures before the key frame (the device's interval is {gop})"
        assert puller.stats["keyframe.throttled"] == 1
        sub.close()
    finally:
        await puller.stop()
        await fleet.stop()


async def test_ifamecmd_for_an_unknown_channel_raises(make_platform: Any) -> None:
    platform = await make_platform([])
    with pytest.raises(MediaError) as caught:
        await force_key_frame(platform, code("34020000", 131, 404))
    assert caught.value.reason == "unknown_channel"
