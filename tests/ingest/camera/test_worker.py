"""The worker's decoder picks frames for analysis at an even rate whatever the stream's time base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sharpeye.ingest.camera.worker import CameraDecoder
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
