"""Video sources: open a camera URL with PyAV and yield its compressed packets.

``open_source`` returns a ``Source`` whose ``packets()`` iterator yields ``VideoPacket``s until the stream
ends or fails (it raises ``SourceError`` with a short reason). Files and the synthetic generator are paced
in real time and loop; network streams are paced by the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket

log = logging.getLogger(__name__)


def stream_info(stream: Any, generation: int = 0) -> StreamInfo:
    """What the decoder and the evidence writer need to know of a PyAV video stream."""
    ctx = stream.codec_context
    tb = stream.time_base or Fraction(1, 90000)
    return StreamInfo(
        codec=ctx.name,
        width=ctx.width,
        height=ctx.height,
        time_base=(tb.numerator, tb.denominator),
        extradata=bytes(ctx.extradata) if ctx.extradata else None,
        fps=float(stream.average_rate) if stream.average_rate else None,
        generation=generation,
    )


class SourceError(RuntimeError):
    """The source failed. ``reason`` is short and groupable (unreachable, auth, no_video, ended, read)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _classify(exc: Exception) -> str:
    text = str(exc).lower()
    if "401" in text or "403" in text or "unauthorized" in text or "forbidden" in text:
        return "auth"
    if "refused" in text or "timed out" in text or "timeout" in text or "no route" in text or "resolve" in text:
        return "unreachable"
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
        self.info = stream_info(stream, self._generation)
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
            # Loop the file; keep timestamps growing.
            step = int(1 / (float(self._stream.time_base) * (self.info.fps or 25)))
            offset += (last_pts - (first_pts or 0)) + step
            self._container.close()
            self._open()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class SyntheticSource(Source):
    """The built-in generator: renders a simulator scenario and encodes it to H.264, in real time, looped."""

    def __init__(self, config: CameraConfig, stop: threading.Event, generation: int) -> None:
        from sharpeye.simulators.camera.scenario import builtin
        from sharpeye.simulators.camera.scene import Scene

        name = config.url.split(":", 1)[1]
        try:
            self._scenario = builtin(name)
        except ValueError as exc:
            raise SourceError("not_found", str(exc)) from exc
        self._scene = Scene(self._scenario)
        self._stop = stop
        self._generation = generation
        fps = self._scenario.fps
        self._encoder = av.CodecContext.create("libx264", "w")
        self._encoder.width = self._scene.width
        self._encoder.height = self._scene.height
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.time_base = Fraction(1, fps)
        self._encoder.framerate = Fraction(fps, 1)
        self._encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps * 2), "bf": "0"}
        self._encoder.open()
        self.info = StreamInfo(
            codec="h264",
            width=self._scene.width,
            height=self._scene.height,
            time_base=(1, fps),
            extradata=None,
            fps=float(fps),
            generation=generation,
        )

    def packets(self) -> Iterator[VideoPacket]:
        fps = self._scenario.fps
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = start + n / fps
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            t = (n / fps) % self._scenario.duration_s
            n += 1
            if self._scenario.script_at(t) == "loss":
                continue
            frame = av.VideoFrame.from_ndarray(self._scene.frame(t), format="bgr24").reformat(format="yuv420p")
            frame.pts = n
            for pkt in self._encoder.encode(frame):
                yield VideoPacket(
                    data=bytes(pkt),
                    pts=pkt.pts,
                    dts=pkt.dts,
                    key=bool(pkt.is_keyframe),
                    arrival=time.monotonic(),
                    generation=self._generation,
                )


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
    for prefix, opener in _OPENERS.items():
        if config.url.startswith(prefix):
            return opener(config, stop, generation, read_timeout)
    if config.url.startswith("synthetic:"):
        return SyntheticSource(config, stop, generation)
    return AvSource(config, stop, generation, read_timeout)
