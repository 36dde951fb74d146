"""A camera read through PyAV (file, RTSP, HTTP): H.264 is passed through untouched, anything else is decoded
and encoded once (``EncodedSource``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.bitstream import BitStreamFilterContext
from sharpeye.api.live.encoder import PTS_TIME_BASE, EncodedSource
from sharpeye.api.live.setting import LiveSettings

log = logging.getLogger(__name__)

OPEN_TIMEOUT_US = "5000000"


def _options(url: str) -> dict[str, str]:
    if url.startswith("rtsp://"):
        return {"rtsp_transport": "tcp", "timeout": OPEN_TIMEOUT_US}
    if "://" in url:
        return {"timeout": OPEN_TIMEOUT_US}
    return {}


def _safe_name(url: str) -> str:
    """The URL without credentials, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def is_file(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


class _Reader:
    """Blocking demuxer, run in a worker thread packet by packet. Files loop with continuous timestamps."""

    def __init__(self, url: str, loop: bool) -> None:
        self.url = url
        self.loop = loop and is_file(url)
        self.container: Any = None
        self.offset = 0  # added to pts (PTS_TIME_BASE) after each loop of a file
        self.last_pts = 0
        self.frame_ticks = 3600

    def open(self) -> Any:
        path = self.url.removeprefix("file://")
        self.container = av.open(path, options=_options(self.url))
        stream = self.container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        self.frame_ticks = max(1, round(90000 / float(rate)))
        return stream

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def rewind(self) -> None:
        self.offset = self.last_pts + self.frame_ticks
        self.container.seek(0)


class ContainerSource:
    """H.264 passthrough: packets leave as they came (converted to Annex B when the container stores AVCC)."""

    key_frame_on_request = False

    def __init__(self, url: str, loop: bool = True) -> None:
        self._reader = _Reader(url, loop)
        self._name = _safe_name(url)

    @property
    def name(self) -> str:
        return self._name

    def request_key_frame(self) -> None:
        """Passthrough cannot make key frames: a new viewer waits for the camera's next IDR."""

    def _packets(self, stream: Any) -> Iterator[av.Packet[Any]]:
        reader = self._reader
        extradata = bytes(stream.codec_context.extradata or b"")
        annexb: BitStreamFilterContext | None = None
        if extradata and not extradata.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")):
            annexb = BitStreamFilterContext("h264_mp4toannexb", stream)
        while True:
            for packet in reader.container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                for out in annexb.filter(packet) if annexb is not None else [packet]:
                    pts = round(float(out.pts * stream.time_base) * 90000) + reader.offset
                    reader.last_pts = pts
                    out.pts = out.dts = pts
                    out.time_base = PTS_TIME_BASE
                    yield out
            if not reader.loop:
                return
            reader.rewind()

    async def packets(self) -> AsyncIterator[av.Packet[Any]]:
        reader = self._reader
        stream = await asyncio.to_thread(reader.open)
        pending: asyncio.Future[av.Packet[Any] | None] | None = None
        try:
            if stream.codec_context.name != "h264":
                raise ValueError(f"{self._name} is {stream.codec_context.name}, not H.264: encode it instead")
            iterator = self._packets(stream)
            start_wall: float | None = None
            start_pts = 0
            pace = is_file(reader.url)
            while True:
                # The read runs on in its thread if the viewer leaves meanwhile: ``finally`` waits for it before
                # closing the container (closing it under a running demux crashed the process).
                pending = asyncio.ensure_future(asyncio.to_thread(next, iterator, None))
                packet = await asyncio.shield(pending)
                if packet is None:
                    return
                if pace:
                    pts = packet.pts or 0
                    if start_wall is None:
                        start_wall, start_pts = time.monotonic(), pts
                    due = start_wall + (pts - start_pts) / 90000
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield packet
        finally:
            if pending is not None and not pending.done():
                await asyncio.wait([pending])
            await asyncio.to_thread(reader.close)


def container_frames(url: str, loop: bool = True) -> Any:
    """A factory of paced decoded frames from ``url`` (for cameras whose codec must be re-encoded)."""

    async def frames() -> AsyncIterator[av.VideoFrame]:
        while True:
            container = await asyncio.to_thread(av.open, url.removeprefix("file://"), options=_options(url))
            pending: asyncio.Future[av.VideoFrame | None] | None = None
            try:
                stream = container.streams.video[0]
                iterator = container.decode(stream)
                start = time.monotonic()
                first: float | None = None
                while True:
                    pending = asyncio.ensure_future(asyncio.to_thread(next, iterator, None))
                    frame = await asyncio.shield(pending)  # see ContainerSource.packets: close after the read
                    if frame is None:
                        break
                    seconds = float(frame.pts * (stream.time_base or 0)) if frame.pts is not None else 0.0
                    first = seconds if first is None else first
                    if is_file(url):
                        delay = start + seconds - first - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    frame.pts = round((time.monotonic() - start) * 90000)
                    frame.time_base = PTS_TIME_BASE
                    yield frame
            finally:
                if pending is not None and not pending.done():
                    await asyncio.wait([pending])
                await asyncio.to_thread(container.close)
            if not (loop and is_file(url)):
                return

    return frames


def probe_codec(url: str) -> tuple[str, int, int, float, bool]:
    """Codec name, width, height, frame rate and whether B-frames occur, of ``url``'s first video stream."""
    with av.open(url.removeprefix("file://"), options=_options(url)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        return ctx.name, ctx.width, ctx.height, rate, bool(ctx.has_b_frames)


def transcoded_source(url: str, settings: LiveSettings, width: int, height: int, fps: float) -> EncodedSource:
    """A source for a camera whose video is not H.264 fit for browsers: decoded and encoded once."""
    if width > 1280:
        height, width = round(height * 1280 / width) // 2 * 2, 1280
    return EncodedSource(
        _safe_name(url), container_frames(url), width // 2 * 2, height // 2 * 2, fps, settings.key_frame_interval_s
    )


def source_exists(url: str) -> bool:
    return not is_file(url) or Path(url.removeprefix("file://")).exists()


class ProbedSource:
    """Opens ``url``, then passes H.264 through, or encodes anything else (or H.264 with B-frames) once."""

    def __init__(self, url: str, settings: LiveSettings) -> None:
        self.url = url
        self.settings = settings
        self._name = _safe_name(url)
        self._inner: ContainerSource | EncodedSource | None = None

    @property
    def name(self) -> str:
        return self._inner.name if self._inner is not None else self._name

    @property
    def key_frame_on_request(self) -> bool:
        return self._inner is not None and self._inner.key_frame_on_request

    def request_key_frame(self) -> None:
        if self._inner is not None:
            self._inner.request_key_frame()

    async def packets(self) -> AsyncIterator[av.Packet[Any]]:
        codec, width, height, fps, b_frames = await asyncio.to_thread(probe_codec, self.url)
        if codec == "h264" and not b_frames:
            self._inner = ContainerSource(self.url)
        else:
            log.info(
                "live source %s is %s%s: encoding it once for all viewers",
                self._name,
                codec,
                " with B-frames" if b_frames else "",
            )
            self._inner = transcoded_source(self.url, self.settings, width, height, fps)
        self._inner.request_key_frame()
        async for packet in self._inner.packets():
            yield packet
