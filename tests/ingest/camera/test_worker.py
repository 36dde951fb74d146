"""The worker's decoder picks frames for analysis at an even rate whatever the stream's time base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sharpeye.ingest.camera.worker import CameraDecoder, Picture
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video


@pytest.mark.parametrize("fps", [10, 25])
def test_analysed_frames_are_evenly_spaced(tmp_path: Path, fps: int) -> None:
    scenario = builtin("intrusion")
    # MPEG-TS: a 90 kHz time base, whose float products with the pts are not exact.
    clip = write_video(scenario, tmp_path / "clip.ts", width=160, height=90, fps=fps, duration_s=12)
    container: Any = av.open(str(clip))
    stream = container.streams.video[0]
    info = stream_info(stream)
    decoder = CameraDecoder(scenario.camera_config("cam", str(clip)), info)
    picked: list[float] = []
    process = decoder.analyzer.process

    def record(frame: np.ndarray, t: float, full: Any = None, lag_s: float = 0.0) -> Any:
        picked.append(t)
        return process(frame, t, full, lag_s)

    decoder.analyzer.process = record  # type: ignore[method-assign]
    for pkt in container.demux(stream):
        if pkt.size:
            decoder.feed(VideoPacket(data=bytes(pkt), pts=pkt.pts, dts=pkt.dts, key=pkt.is_keyframe, arrival=0.0))
    container.close()
    gaps = np.diff(picked[2:])  # the first pick and the next, half a step later, start the schedule
    assert len(picked) >= 5 * 11
    assert np.allclose(gaps, 1 / decoder.config.analysis_fps, atol=1e-3), sorted(set(np.round(gaps, 3)))


def test_a_region_converted_from_the_planes_matches_the_whole_picture(tmp_path: Path) -> None:
    """The detector's regions are converted straight from the YUV 4:2:0 planes, at odd bounds too: the same
    pixels as the whole picture's conversion, within the rounding of two converters (chroma upsampling)."""
    scenario = builtin("intrusion")
    clip = write_video(scenario, tmp_path / "clip.ts", width=322, height=182, fps=10, duration_s=2)
    container: Any = av.open(str(clip))
    frame = next(iter(container.decode(video=0)))
    container.close()
    assert frame.format.name == "yuv420p"
    whole = Picture(frame, av.video.reformatter.VideoReformatter()).whole()
    for x0, y0, x1, y1 in [(0, 0, 322, 182), (1, 3, 101, 60), (37, 51, 322, 182), (120, 90, 121, 92)]:
        region = Picture(frame, av.video.reformatter.VideoReformatter()).crop(x0, y0, x1, y1)
        expected = whole[y0:y1, x0:x1]
        assert region.shape == expected.shape
        diff = np.abs(region.astype(np.int16) - expected.astype(np.int16))
        assert diff.mean() < 2.5 and np.percentile(diff, 99) <= 12, (x0, y0, diff.mean())
    picture = Picture(frame, av.video.reformatter.VideoReformatter())
    picture.whole()
    assert np.array_equal(picture.crop(5, 5, 50, 50), whole[5:50, 5:50])  # once converted whole: cut from it


# Decodes and analyses vtest.avi's first packets as a worker process does (cv2 on one thread, as worker_main sets),
# then prints how many threads the process had before and after.
_THREADS = """
import os, sys, av, cv2
cv2.setNumThreads(1)
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info
container = av.open(sys.argv[1])
stream = container.streams.video[0]
config = CameraConfig.model_validate({"id": "c", "kind": "camera", "name": "c", "grid": "g", "url": sys.argv[1]})
decoder = CameraDecoder(config, stream_info(stream), True)
before = len(os.listdir("/proc/self/task"))
for i, p in enumerate(container.demux(stream)):
    if i > 30:
        break
    if p.size:
        decoder.feed(VideoPacket(data=bytes(p), pts=p.pts, dts=p.dts, key=p.is_keyframe, arrival=0.0))
print(before, len(os.listdir("/proc/self/task")), decoder.analysed)
"""


def test_a_worker_scales_on_its_own_thread() -> None:
    """A worker is one core's work: its scaling makes no pool of slice threads (PyAV's default gives every scaler
    one thread per core, which cost the 20 cameras of a worker three times the scaling's own CPU)."""
    import subprocess
    import sys

    from tests.ingest.camera.test_codecs import VTEST

    done = subprocess.run([sys.executable, "-c", _THREADS, str(VTEST)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    before, after, analysed = (int(v) for v in done.stdout.split())
    assert analysed >= 10 and after == before, done.stdout
