"""Video sources: open a camera URL with PyAV and yield its compressed packets.

``open_source`` returns a ``Source`` whose ``packets()`` iterator yields ``VideoPacket``s until the stream
ends or fails (it raises ``SourceError`` with a short reason). Files and the synthetic generator are paced
in real time and loop; network streams are paced by the network.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import av
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket

log = logging.getLogger(__name__)


def stream_info(stream: Any, generation: int = 0, container: str | None = None) -> StreamInfo:
    """What the decoder and the evidence writer need to know of a PyAV video stream."""
    ctx = stream.codec_context
    tb = stream.time_base or Fraction(1, 90000)
    fmt = ctx.format
    tag = ctx.codec_tag
    return StreamInfo(
        codec=ctx.name,
        width=ctx.width,
        height=ctx.height,
        time_base=(tb.numerator, tb.denominator),
        extradata=bytes(ctx.extradata) if ctx.extradata else None,
        fps=float(stream.average_rate) if stream.average_rate else None,
        generation=generation,
        pix_fmt=fmt.name if fmt is not None else None,
        codec_tag=tag if isinstance(tag, str) and tag.strip("\x00") else None,
        container=container,
    )


class SourceError(RuntimeError):
    """The source failed. ``reason`` is short and groupable (unreachable, auth, no_video, ended, read)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _classify(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text or "timed out" in text or "timeout" in text or "no route" in text or "resolve" in text:
        return "unreachable"
    # Whole numbers only: a port such as 44017 in the URL of the message is no HTTP 401.
    if re.search(r"\b40[13]\b", text) or "unauthorized" in text or "forbidden" in text:
        return "auth"
    if "404" in text or "not found" in text or "no such file" in text:
        return "not_found"
    return "open"


class Source:
    """An opened stream."""

    info: StreamInfo

    def packets(self) -> Iterator[VideoPacket]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the stream."""


class AvSource(Source):
    """RTSP, HTTP, or a file, demuxed by PyAV (files looped and paced in real time)."""

    def __init__(self, config: CameraConfig, stop: threading.Event, generation: int, read_timeout: float) -> None:
        self._config = config
        self._stop = stop
        self._generation = generation
        url = config.open_url
        self._url = url[7:] if url.startswith("file://") else url
        self._is_file = "://" not in self._url
        self._read_timeout = read_timeout
        self._container: Any = None
        self._open()

    def _open(self) -> None:
        options: dict[str, str] = {}
        if not self._is_file:
            # Probe briefly: the stream parameters come in the SDP or the first key frame.
            options["analyzeduration"] = "1000000"
            options["probesize"] = "1000000"
        if self._url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self._config.rtsp_transport
        if self._is_file and not Path(self._url).is_file():
            raise SourceError("not_found", f"no file {self._url}")
        try:
            self._container = av.open(self._url, options=options, timeout=(self._read_timeout, self._read_timeout))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(_classify(exc), str(exc)) from exc
        videos = self._container.streams.video
        if not videos:
            self._container.close()
            raise SourceError("no_video", f"{self._url} has no video stream")
        stream = videos[0]
        self.info = stream_info(stream, self._generation, self._container.format.name)
        self._stream = stream
        # Multipart JPEG over HTTP has no timestamps (FFmpeg numbers frames at a guessed 25 fps): use arrival.
        self._untimed = self._container.format.name in ("mpjpeg", "mjpeg", "jpeg_pipe")

    def packets(self) -> Iterator[VideoPacket]:
        offset = 0
        while True:
            start_wall = time.monotonic()
            first_pts: int | None = None
            last_pts = 0
            try:
                for pkt in self._container.demux(self._stream):
                    if self._stop.is_set():
                        return
                    if pkt.size == 0:
                        continue
                    pts, dts = (None, None) if self._untimed else (pkt.pts, pkt.dts)
                    if self._is_file and pts is not None:
                        if first_pts is None:
                            first_pts = pts
                        due = start_wall + float((pts - first_pts) * self._stream.time_base)
                        delay = due - time.monotonic()
                        if delay > 0 and self._stop.wait(min(delay, 2.0)):
                            return
                        last_pts = max(last_pts, pts)
                        pts += offset
                        dts = None if dts is None else dts + offset
                    yield VideoPacket(
                        data=bytes(pkt),
                        pts=pts,
                        dts=dts,
                        key=bool(pkt.is_keyframe),
                        arrival=time.monotonic(),
                        generation=self._generation,
                    )
            except av.FFmpegError as exc:
                raise SourceError("read", str(exc)) from exc
            if not self._is_file:
                raise SourceError("ended", "the stream ended")
            if first_pts is None:
                # Nothing timed came out of a whole pass: looping would spin on an empty file.
                raise SourceError("no_video", f"{self._url} holds no timed video packets")
            # Loop the file; keep timestamps growing.
            step = int(1 / (float(self._stream.time_base) * (self.info.fps or 25)))
            offset += (last_pts - (first_pts or 0)) + step
            self._container.close()
            self._open()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class SourceFactory(Protocol):
    """A video source for URLs of one scheme that PyAV does not open itself, registered under the
    ``sharpeye.video_sources`` entry points by scheme (``synthetic`` for the demo's rendered scenes)."""

    def __call__(self, config: CameraConfig, stop: threading.Event, generation: int) -> Source: ...


SOURCE_GROUP = "sharpeye.video_sources"


@cache
def source_factories() -> dict[str, SourceFactory]:
    """Installed source factories by URL scheme."""
    return {ep.name: ep.load() for ep in entry_points(group=SOURCE_GROUP)}


Opener = Callable[[CameraConfig, threading.Event, int, float], Source]
_OPENERS: dict[str, Opener] = {}


def register_opener(prefix: str, opener: Opener | None) -> None:
    """Let another transport open URLs starting with ``prefix`` (e.g. ``gb28181:`` pulled over SIP INVITE);
    ``None`` removes it."""
    if opener is None:
        _OPENERS.pop(prefix, None)
    else:
        _OPENERS[prefix] = opener


def open_source(config: CameraConfig, stop: threading.Event, generation: int, read_timeout: float) -> Source:
    """Open a camera's stream; raises ``SourceError``."""
    for prefix, opener in _OPENERS.items():  # transports of this process (GB/T 28181 channels pulled over SIP)
        if config.url.startswith(prefix):
            return opener(config, stop, generation, read_timeout)
    scheme, sep, _ = config.url.partition(":")
    factory = source_factories().get(scheme) if sep else None  # installed sources (the demo's scenes)
    if factory is not None:
        return factory(config, stop, generation)
    return AvSource(config, stop, generation, read_timeout)
