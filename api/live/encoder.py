"""One H.264 encoder for a camera whose video is not H.264 already (synthetic, MJPEG, MPEG-4): its packets
are shared by every viewer, so a viewer costs no encoding."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType

log = logging.getLogger(__name__)

PTS_TIME_BASE = Fraction(1, 90000)


class FrameEncoder:
    """libx264 tuned for live view: constrained baseline (what browsers decode), no B-frames, no look-ahead."""

    def __init__(self, width: int, height: int, fps: float, key_frame_interval_s: float, bitrate: int = 0) -> None:
        self.width = width
        self.height = height
        self.context = av.CodecContext.create("libx264", "w")
        self.context.width = width
        self.context.height = height
        self.context.pix_fmt = "yuv420p"
        self.context.time_base = PTS_TIME_BASE
        self.context.framerate = Fraction(round(fps * 1000), 1000)
        gop = max(1, round(fps * key_frame_interval_s))
        self.context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "level": "31",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:aud=0",
        }
        self.context.bit_rate = bitrate or max(300_000, width * height * 3)
        self._key_requested = True

    def request_key_frame(self) -> None:
        self._key_requested = True

    def encode(self, frame: av.VideoFrame) -> list[av.Packet[Any]]:
        """Encode one frame (any pixel format and size: converted here, once, for every viewer)."""
        if frame.format.name != "yuv420p" or frame.width != self.width or frame.height != self.height:
            pts, time_base = frame.pts, frame.time_base
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
        if self._key_requested:
            frame.pict_type = PictureType.I
            self._key_requested = False
        else:
            frame.pict_type = PictureType.NONE
        packets = list(self.context.encode(frame))
        for packet in packets:
            packet.time_base = PTS_TIME_BASE
        return packets


class EncodedSource:
    """A ``LiveSource`` that encodes frames from ``frames()`` once; frames carry pts in ``PTS_TIME_BASE``."""

    key_frame_on_request = True

    def __init__(
        self,
        name: str,
        frames: Callable[[], AsyncIterator[av.VideoFrame]],
        width: int,
        height: int,
        fps: float,
        key_frame_interval_s: float,
    ) -> None:
        self._name = name
        self._frames = frames
        self.encoder = FrameEncoder(width, height, fps, key_frame_interval_s)

    @property
    def name(self) -> str:
        return self._name

    def request_key_frame(self) -> None:
        self.encoder.request_key_frame()

    async def packets(self) -> AsyncIterator[av.Packet[Any]]:
        async for frame in self._frames():
            for packet in await asyncio.to_thread(self.encoder.encode, frame):
                yield packet
