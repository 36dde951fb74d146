"""A camera feed over real sources: it survives a camera that is missing and then appears, stops reading a camera
nobody watches, and the time code survives drawing and reading at any size."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sharpeye.api.live.camera import source_factory
from sharpeye.api.live.feed import CameraFeed
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.live.stamp import latency_ms, read_stamp, write_stamp

from tests.api.live.test_container import write_clip


@given(ms=st.integers(min_value=0, max_value=2**40), width=st.integers(64, 1920), height=st.integers(64, 1080))
@settings(max_examples=60, deadline=None)
def test_stamp_round_trip(ms: int, width: int, height: int) -> None:
    image = np.full((height, width, 3), 90, np.uint8)
    write_stamp(image, ms)
    assert read_stamp(image) == ms & 0xFFFFFFFF
    assert latency_ms(ms & 0xFFFFFFFF, ms + 25) == 25


def test_unstamped_picture_reads_as_none() -> None:
    assert read_stamp(np.full((180, 320), 128, np.uint8)) is None
    assert latency_ms(2**32 - 10, 5) == 15  # across the wrap


async def test_feed_waits_for_a_missing_camera_and_recovers(tmp_path: Path) -> None:
    clip = tmp_path / "late.ts"
    feed = CameraFeed("cam-late", source_factory(str(clip), LiveSettings()), queue_packets=50, idle_stop_s=0.2)
    sub = feed.subscribe()
    getter = asyncio.create_task(sub.get())
    deadline = time.monotonic() + 10
    while feed.failures < 2 and time.monotonic() < deadline:  # noqa: ASYNC110 - poll with a deadline
        await asyncio.sleep(0.05)
    assert feed.failures >= 2 and "late.ts" in feed.last_error
    assert not getter.done()
    write_clip(clip, "libx264", frames=40)
    first = await asyncio.wait_for(getter, 15)
    assert first.is_keyframe
    deadline = time.monotonic() + 5
    while not sub.pending and time.monotonic() < deadline:  # noqa: ASYNC110 - poll with a deadline
        await asyncio.sleep(0.05)
    assert sub.pending > 0, "packets read while nobody took them wait in the viewer's queue"
    sub.close()
    deadline = time.monotonic() + 5
    while feed.running and time.monotonic() < deadline:  # noqa: ASYNC110 - poll with a deadline
        await asyncio.sleep(0.05)
    assert not feed.running, "a feed nobody watches stops reading its camera"
    await feed.stop()
