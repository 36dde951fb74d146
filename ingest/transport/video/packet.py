"""``VideoPacket`` and ``StreamInfo``: compressed video as capture hands it to subscribers, evidence and workers."""

from __future__ import annotations

import msgspec


class StreamInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a decoder or muxer needs to know about a camera's video stream."""

    codec: str
    width: int
    height: int
    time_base: tuple[int, int]
    extradata: bytes | None = None
    fps: float | None = None
    generation: int = 0  # grows at each (re)connection
    pix_fmt: str | None = None  # the container's pixel format, when it names one
    codec_tag: str | None = None  # the container's fourcc (AVI "DIV3"), when it has one
    container: str | None = None  # the demuxer's format name (mp4, matroska, avi, mpegts, rtsp...)


class VideoPacket(msgspec.Struct, frozen=True, kw_only=True):
    """One compressed packet. ``arrival`` is the hub's monotonic clock when capture received it."""

    data: bytes
    pts: int | None
    dts: int | None
    key: bool
    arrival: float
    generation: int = 0

    def seconds(self, info: StreamInfo) -> float | None:
        if self.pts is None:
            return None
        num, den = info.time_base
        return self.pts * num / den
