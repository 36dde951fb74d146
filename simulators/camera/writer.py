"""Encodes a scenario to an H.264 file (MPEG-TS by default) with PyAV, for the RTSP server and for drills."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from sharpeye.simulators.camera.scenario import Scenario
from sharpeye.simulators.camera.scene import Scene


def write_video(
    scenario: Scenario,
    path: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: int | None = None,
    duration_s: float | None = None,
    gop_s: float = 1.0,
    preset: str = "veryfast",
    bitrate: int | None = None,
) -> Path:
    """Write ``scenario`` rendered at the given size to ``path`` (.ts → MPEG-TS, .mp4, .mkv). Returns ``path``."""
    fps = fps or scenario.fps
    scenario = scenario.model_copy(update={"fps": fps})
    scene = Scene(scenario, width, height)
    duration = duration_s if duration_s is not None else scenario.duration_s
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".ts": "mpegts", ".mp4": "mp4", ".mkv": "matroska"}.get(path.suffix)
    out: Any = av.open(str(path), "w", format=fmt)
    try:
        options = {"preset": preset, "tune": "zerolatency", "g": str(max(1, round(gop_s * fps))), "bf": "0"}
        stream = out.add_stream("libx264", rate=fps, options=options)
        stream.width = scene.width
        stream.height = scene.height
        stream.pix_fmt = "yuv420p"
        if bitrate:
            stream.bit_rate = bitrate
        stream.codec_context.time_base = Fraction(1, fps)
        for n in range(round(duration * fps)):
            t = n / fps
            if scenario.script_at(t) == "loss":
                continue
            frame = av.VideoFrame.from_ndarray(scene.frame(t), format="bgr24")
            frame.pts = n
            frame.time_base = Fraction(1, fps)
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    finally:
        out.close()
    return path
