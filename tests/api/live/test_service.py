"""The live-view service with real aiortc peers on loopback: H.264 encoded once and shared, passthrough of a
real H.264 file, key frames for new viewers, slow viewers dropped, shutdown closes everyone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection
from sharpeye.api.live.camera import source_factory
from sharpeye.api.live.service import BadOffer, LiveService, SourceFactory, UnknownCamera
from sharpeye.api.live.setting import LiveSettings

from tests.api.live.test_container import write_clip
from tests.api.live.viewer import Viewer

SETTINGS = LiveSettings(synthetic_width=320, synthetic_height=180, synthetic_fps=15, idle_stop_s=0.5, queue_packets=20)


@pytest.fixture
async def live() -> AsyncIterator[LiveService]:
    def resolve(camera_id: str) -> SourceFactory | None:
        return source_factory(f"synthetic:{camera_id}", SETTINGS) if camera_id.startswith("cam") else None

    service = LiveService(resolve, SETTINGS)
    await service.start()
    yield service
    await service.stop()


async def watch(live: LiveService, camera: str) -> tuple[Viewer, str]:
    viewer = Viewer()
    ids: list[str] = []

    async def answer(offer: str) -> str:
        session, sdp = await live.open(camera, offer)
        ids.append(session.id)
        return sdp

    await viewer.connect(answer)
    return viewer, ids[0]


async def test_viewer_sees_stamped_picture_within_two_seconds(live: LiveService) -> None:
    viewer, _ = await watch(live, "cam-a")
    try:
        await asyncio.wait_for(viewer.got_frame.wait(), 2.0)
        assert viewer.first_frame_at is not None and viewer.first_frame_at - viewer.started_at < 2.0
        deadline = time.monotonic() + 5
        while len(viewer.latencies) < 3 and time.monotonic() < deadline:  # noqa: ASYNC110 - poll with a deadline
            await asyncio.sleep(0.05)
        assert len(viewer.latencies) >= 3, "the time code drawn in the frames could not be read back"
        assert max(viewer.latencies) < 1000
        assert max(viewer.bright) > 20, "frames are blank"
    finally:
        await viewer.close()


async def test_viewers_share_one_encoder_and_a_second_viewer_starts_fast(live: LiveService) -> None:
    first, _ = await watch(live, "cam-b")
    await asyncio.wait_for(first.got_frame.wait(), 2.0)
    second, _ = await watch(live, "cam-b")
    try:
        await asyncio.wait_for(second.got_frame.wait(), 2.0)
        feed = live.feeds["cam-b"]
        assert feed.viewers == 2
        assert len(live.feeds) == 1
        before = feed.packets
        await asyncio.sleep(1.0)
        produced = feed.packets - before
        # one encoder: about 15 packets a second whatever the number of viewers
        assert 8 <= produced <= 20, produced
        # and one packetisation: each access unit is split into RTP payloads once, the second viewer reuses them
        assert feed.packetizer.packetised <= feed.packets
        assert feed.packetizer.shared >= produced // 2, (feed.packetizer.shared, produced)
    finally:
        await first.close()
        await second.close()


async def test_unknown_camera_and_bad_offer_are_refused(live: LiveService) -> None:
    with pytest.raises(UnknownCamera):
        await live.open("door-1", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
    with pytest.raises(BadOffer):
        await live.open("cam-c", "hello")
    assert live.sessions == {}


async def test_slow_viewer_is_dropped_without_slowing_others(live: LiveService) -> None:
    good, _ = await watch(live, "cam-d")
    await asyncio.wait_for(good.got_frame.wait(), 2.0)
    feed = live.feeds["cam-d"]
    stuck = feed.subscribe()  # a viewer that reads one packet, then stalls
    await asyncio.wait_for(stuck.get(), 3.0)
    frames_before = good.frames
    deadline = time.monotonic() + 10
    while not stuck.closed and time.monotonic() < deadline:  # noqa: ASYNC110 - poll with a deadline
        await asyncio.sleep(0.05)
    try:
        assert stuck.reason == "slow"
        assert feed.viewers == 1
        await asyncio.sleep(0.5)
        assert good.frames > frames_before + 5
        assert not good.ended.is_set()
    finally:
        await good.close()


async def test_a_viewer_still_connecting_is_not_dropped(live: LiveService) -> None:
    watching, _ = await watch(live, "cam-f")
    await asyncio.wait_for(watching.got_frame.wait(), 2.0)
    feed = live.feeds["cam-f"]
    connecting = feed.subscribe()  # not reading yet, as while ICE and DTLS are under way
    packets = feed.packets
    deadline = time.monotonic() + 10
    while feed.packets < packets + 2 * SETTINGS.queue_packets and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    try:
        assert not connecting.closed
        first = await asyncio.wait_for(connecting.get(), 2.0)
        assert first.is_keyframe, "a viewer starts at a key frame, asked for when it starts reading"
    finally:
        connecting.close()
        await watching.close()


async def test_leaving_and_shutdown_close_connections(live: LiveService) -> None:
    a, a_id = await watch(live, "cam-e")
    b, _ = await watch(live, "cam-e")
    await asyncio.wait_for(asyncio.gather(a.got_frame.wait(), b.got_frame.wait()), 3.0)
    assert await live.close(a_id)
    assert not await live.close(a_id)
    await asyncio.wait_for(a.ended.wait(), 5.0)
    assert live.viewers("cam-e") == 1
    await live.stop()
    await asyncio.wait_for(b.ended.wait(), 5.0)
    assert live.sessions == {} and live.feeds == {}
    await a.close()
    await b.close()


async def test_h264_file_camera_reaches_a_viewer_without_re_encoding(tmp_path: Path) -> None:
    clip = tmp_path / "camera.mp4"
    write_clip(clip, "libx264", frames=60, fps=20)

    def resolve(camera_id: str) -> SourceFactory | None:
        return source_factory(str(clip), SETTINGS) if camera_id == "cam-file" else None

    service = LiveService(resolve, SETTINGS)
    await service.start()
    viewer = Viewer(read_stamps=False)
    try:

        async def answer(offer: str) -> str:
            _, sdp = await service.open("cam-file", offer)
            return sdp

        await viewer.connect(answer)
        await asyncio.wait_for(viewer.got_frame.wait(), 5.0)
        frames = viewer.frames
        await asyncio.sleep(1.0)
        assert viewer.frames >= frames + 10, "frames keep coming (the file loops)"
        feed = service.feeds["cam-file"]
        assert feed.source is not None and not feed.source.key_frame_on_request, "passthrough, not an encoder"
    finally:
        await viewer.close()
        await service.stop()


async def test_a_viewer_that_never_connects_is_closed() -> None:
    settings = SETTINGS.model_copy(update={"connect_timeout_s": 1.0})
    service = LiveService(lambda cid: source_factory("synthetic:x", settings), settings)
    await service.start()
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        session, _ = await service.open("cam-gone", pc.localDescription.sdp)  # the answer is never applied
        assert service.viewers("cam-gone") == 1
        deadline = time.monotonic() + 5
        while not session.closed and time.monotonic() < deadline:  # noqa: ASYNC110 - poll with a deadline
            await asyncio.sleep(0.05)
        assert session.closed and session.reason == "connect timeout"
        assert service.viewers("cam-gone") == 0 and service.dropped == {"connect timeout": 1}
    finally:
        await pc.close()
        await service.stop()
