"""Real-world codecs and containers, encoded by FFmpeg's own encoders through PyAV (small and short).

Every clip shows a bright square moving over a textured background, so motion analysis has something to see
and every decoded picture can be checked against the clip's true size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


@dataclass(frozen=True)
class ClipSpec:
    """One clip: codec, container, size, rate, length and encoder options."""

    name: str
    codec: str
    container: str
    width: int = 192
    height: int = 108
    fps: int = 10
    seconds: float = 3.0
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)
    gop: int | None = None
    max_b_frames: int | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.container}"


SPECS: tuple[ClipSpec, ...] = (
    ClipSpec("h264-mp4", "libx264", "mp4", options={"preset": "ultrafast"}),
    ClipSpec("h264-mkv", "libx264", "mkv", options={"preset": "ultrafast"}),
    ClipSpec("h264-ts", "libx264", "ts", options={"preset": "ultrafast"}),
    ClipSpec("h264-avi", "libx264", "avi", options={"preset": "ultrafast"}),
    ClipSpec("h264-bframes-mp4", "libx264", "mp4", options={"preset": "fast", "bf": "3"}, max_b_frames=3),
    ClipSpec("h265-mp4", "libx265", "mp4", options={"preset": "ultrafast", "x265-params": "log-level=error"}),
    ClipSpec("h265-mkv", "libx265", "mkv", options={"preset": "ultrafast", "x265-params": "log-level=error"}),
    ClipSpec("mpeg4-avi", "mpeg4", "avi"),
    ClipSpec("mpeg4-mp4", "mpeg4", "mp4"),
    ClipSpec("msmpeg4v3-avi", "msmpeg4", "avi"),
    ClipSpec("mjpeg-avi", "mjpeg", "avi", pix_fmt="yuvj420p"),
    ClipSpec("mjpeg-mkv", "mjpeg", "mkv", pix_fmt="yuvj420p"),
    ClipSpec("h264-odd-mkv", "libx264", "mkv", width=202, height=114, options={"preset": "ultrafast"}),
    ClipSpec("mjpeg-odd-avi", "mjpeg", "avi", width=201, height=113, pix_fmt="yuvj444p"),
    # One key frame, then 22 s of predicted pictures only.
    ClipSpec("h264-longgop-ts", "libx264", "ts", fps=5, seconds=22.0, gop=1000, options={"preset": "ultrafast"}),
)


def picture(spec: ClipSpec, i: int) -> np.ndarray:
    """Frame ``i`` of a clip in BGR: a gradient background and a white square crossing it."""
    h, w = spec.height, spec.width
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // max(1, w - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // max(1, h - 1)).astype(np.uint8)
    img[..., 2] = 80
    side = max(8, h // 5)
    n = max(1, round(spec.fps * spec.seconds))
    cx = int((w - side) * (i % n) / max(1, n - 1))
    cy = (h - side) // 2
    img[cy : cy + side, cx : cx + side] = 255
    return img


def write_clip(spec: ClipSpec, directory: Path) -> Path:
    """Encode ``spec`` into ``directory`` (once: an existing file is reused)."""
    path = directory / spec.filename
    if path.exists():
        return path
    tmp = directory / f"part-{spec.filename}"
    out: Any = av.open(str(tmp), "w", format={"ts": "mpegts", "mkv": "matroska"}.get(spec.container, spec.container))
    stream = out.add_stream(spec.codec, rate=spec.fps)
    stream.width, stream.height = spec.width, spec.height
    stream.pix_fmt = spec.pix_fmt
    stream.codec_context.time_base = Fraction(1, spec.fps)
    if spec.gop is not None:
        stream.codec_context.gop_size = spec.gop
    if spec.max_b_frames is not None:
        stream.codec_context.max_b_frames = spec.max_b_frames
    if spec.options:
        stream.options = dict(spec.options)
    n = round(spec.fps * spec.seconds)
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(picture(spec, i), format="bgr24").reformat(format=spec.pix_fmt)
        frame.pts = i
        frame.time_base = Fraction(1, spec.fps)
        for pkt in stream.encode(frame):
            out.mux(pkt)
    for pkt in stream.encode(None):
        out.mux(pkt)
    out.close()
    tmp.rename(path)
    return path
