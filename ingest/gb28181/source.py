"""A GB/T 28181 channel as a capture ``Source`` (``gb28181:<device>/<channel>[?stream=N]``), so the camera service
reads it like an RTSP camera: ring buffer for evidence, analytics workers, packet subscriptions. Holding the channel
keeps it pulled; a stalled or ended session raises ``SourceError`` and capture reconnects with backoff (and the
camera's video-loss alarm follows, as for RTSP)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import msgspec
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.gb28181.platform import MediaError
from sharpeye.ingest.gb28181.puller import ChannelPuller, ThreadedFeed
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import Opener, Source, SourceError


class GbSource(Source):
    def __init__(
        self, puller: ChannelPuller, config: CameraConfig, stop: threading.Event, generation: int, read_timeout: float
    ) -> None:
        self._stop = stop
        self._generation = generation
        self._read_timeout = read_timeout
        self._feed: ThreadedFeed | None = None
        try:
            info, self._feed = puller.open_threaded(config.open_url, stop, read_timeout)
        except MediaError as exc:
            raise SourceError(
                "unreachable" if exc.reason in ("timeout", "unknown_channel", "not_registered") else exc.reason,
                str(exc),
            ) from None
        except ValueError as exc:
            raise SourceError("not_found", str(exc)) from exc
        self.info = msgspec.structs.replace(info, generation=generation)

    def packets(self) -> Iterator[VideoPacket]:
        assert self._feed is not None
        while not self._stop.is_set():
            try:
                packet = self._feed.get(self._read_timeout)
            except queue.Empty:
                raise SourceError("read", f"no video for {self._read_timeout:.0f} s") from None
            if packet is None:
                raise SourceError("ended", f"the GB/T 28181 session ended ({self._feed.ended})")
            yield msgspec.structs.replace(packet, generation=self._generation)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None


def opener(puller: ChannelPuller) -> Opener:
    def open_gb(config: CameraConfig, stop: threading.Event, generation: int, read_timeout: float) -> Source:
        return GbSource(puller, config, stop, generation, read_timeout)

    return open_gb
