"""On-demand pulling of GB/T 28181 channels, shared by every user of a channel (live view, analytics, evidence).

``subscribe(channel)`` INVITEs the channel the first time anyone asks (one INVITE however many ask at once), waits
for the first key frame (which tells codec and size), and hands out ``PacketSubscription``s fed with the channel's
access units as ``VideoPacket``s (90 kHz timestamps), the same objects an RTSP camera's capture hands out. When the
last user leaves, the channel is released with BYE after ``grace_s``, so an idle district pulls nothing; a user
that holds the channel continuously (analytics, recording) keeps it pulled. If the session ends (device BYE,
stall), every subscription ends (``EOFError``) and the next subscriber pulls anew.

Every method runs on the event loop; capture threads use ``open_threaded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import av
from sharpeye.ingest.gb28181.keyframe import KeyFrameRequests
from sharpeye.ingest.gb28181.media import MediaSession
from sharpeye.ingest.gb28181.platform import GbPlatform, MediaError
from sharpeye.ingest.transport.ps import AccessUnit
from sharpeye.ingest.transport.rtp import RtpMode
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.subscription import PacketSubscription

log = logging.getLogger(__name__)

Sink = Callable[[VideoPacket], None]
SCHEME = "gb28181:"
MAX_GOP = 300  # packets kept for a new user: about 12 s at 25 fps


def parse_url(url: str) -> tuple[str, str, int]:
    """``gb28181:<device>/<channel>[?stream=N]`` (the device part may be empty) to (device, channel, stream)."""
    rest = url.removeprefix(SCHEME)
    path, _, query = rest.partition("?")
    device, _, channel = path.rpartition("/")
    stream = 0
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name in ("stream", "streamnumber") and value.isdigit():
            stream = int(value)
    if not (channel.isdigit() and len(channel) == 20) or (device and not (device.isdigit() and len(device) == 20)):
        raise ValueError(f"not a GB/T 28181 channel URL: {url!r} (gb28181:<device code>/<channel code>)")
    return device, channel, stream


def stream_info_of(unit: AccessUnit, generation: int) -> StreamInfo:
    """Codec and picture size from the first key frame (decoded once, in the caller's thread)."""
    decoder: Any = av.CodecContext.create(unit.codec, "r")
    width = height = 0
    try:
        for frame in decoder.decode(av.Packet(unit.data)):
            width, height = frame.width, frame.height
        if not width:
            for frame in decoder.decode(None):
                width, height = frame.width, frame.height
    except av.FFmpegError as exc:
        raise MediaError("undecodable", f"first key frame does not decode: {exc}") from None
    if not width:
        raise MediaError("undecodable", "first key frame gave no picture")
    return StreamInfo(codec=unit.codec, width=width, height=height, time_base=(1, 90000), generation=generation)


@dataclass(slots=True, eq=False)
class _Pull:
    channel_id: str
    device_id: str
    stream_number: int
    session: MediaSession | None = None
    info: StreamInfo | None = None
    ready: asyncio.Future[None] | None = None
    sinks: dict[Sink, Callable[[str], None]] = field(default_factory=dict)  # sink -> how to end it
    users: int = 0
    release: asyncio.TimerHandle | None = None
    generation: int = 0
    gop: list[VideoPacket] = field(default_factory=list)  # since the last key frame: replayed to a new user

    def add(self, sink: Sink, end: Callable[[str], None]) -> None:
        """A new user starts at the last key frame at once, instead of waiting for the next one."""
        self.sinks[sink] = end
        for packet in self.gop:
            sink(packet)


class ChannelPuller:
    def __init__(
        self,
        platform: GbPlatform,
        *,
        grace_s: float | None = None,
        transport: RtpMode | None = None,
        subscriber_queue: int = 256,
    ) -> None:
        self.platform = platform
        self.grace_s = platform.settings.release_grace_s if grace_s is None else grace_s
        self.transport = transport
        self._queue = subscriber_queue
        self._pulls: dict[tuple[str, int], _Pull] = {}
        self._generation = 0
        self.stats: Counter[str] = Counter()
        self.first_frame_s: list[float] = []  # INVITE to first key frame, per pull (for /metrics and the bench)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.key_frames = KeyFrameRequests(platform, self.stats)

    @property
    def pulled(self) -> list[tuple[str, int]]:
        return [key for key, pull in self._pulls.items() if pull.session is not None]

    async def subscribe(self, url_or_channel: str, stream_number: int | None = None) -> PacketSubscription:
        """A subscription to a channel's packets from its next key frame; raises ``MediaError``."""
        loop = asyncio.get_running_loop()
        pull = await self._acquire(url_or_channel, stream_number)

        def closed(sub: PacketSubscription) -> None:
            if pull.sinks.pop(sink, None) is not None:
                self._leave(pull)

        sub = PacketSubscription(pull.channel_id, loop, self._queue, pull.info, closed)
        sink: Sink = functools.partial(sub.push, info=None)
        pull.add(sink, lambda _reason: sub.close())
        return sub

    async def hold(self, url_or_channel: str, sink: Sink, end: Callable[[str], None]) -> StreamInfo:
        """Feed ``sink`` until ``unhold`` (``end(reason)`` when the session ends); raises ``MediaError``."""
        pull = await self._acquire(url_or_channel, None)
        pull.add(sink, end)
        assert pull.info is not None
        return pull.info

    def unhold(self, url_or_channel: str, sink: Sink) -> None:
        _, channel, stream = self._key(url_or_channel, None)
        pull = self._pulls.get((channel, stream))
        if pull is not None and pull.sinks.pop(sink, None) is not None:
            self._leave(pull)

    def _key(self, url_or_channel: str, stream_number: int | None) -> tuple[str, str, int]:
        if url_or_channel.startswith(SCHEME):
            device, channel, stream = parse_url(url_or_channel)
        else:
            device, channel, stream = "", url_or_channel, 0
        return device, channel, stream if stream_number is None else stream_number

    async def _acquire(self, url_or_channel: str, stream_number: int | None) -> _Pull:
        self._loop = asyncio.get_running_loop()
        device, channel, stream = self._key(url_or_channel, stream_number)
        pull = self._pulls.get((channel, stream))
        if pull is None:
            pull = _Pull(channel, device, stream)
            self._pulls[(channel, stream)] = pull
        pull.users += 1
        if pull.release is not None:
            pull.release.cancel()
            pull.release = None
        try:
            if pull.ready is None:
                pull.ready = asyncio.ensure_future(self._open(pull))
            await asyncio.shield(pull.ready)
        except BaseException:
            self._leave(pull)
            raise
        return pull

    async def _open(self, pull: _Pull) -> None:
        started = time.monotonic()
        self.stats["invites"] += 1
        try:
            session = await self.platform.invite(
                pull.channel_id,
                stream_number=pull.stream_number,
                transport=self.transport,
                device_id=pull.device_id or None,
            )
        except MediaError:
            self._drop(pull)
            raise
        first: asyncio.Future[AccessUnit] = asyncio.get_running_loop().create_future()

        def on_unit(unit: AccessUnit) -> None:
            if not first.done():
                first.set_result(unit)
                return
            self._fan_out(pull, unit)

        session.add_consumer(on_unit)
        pull.session = session
        waiter: asyncio.Future[Any] = asyncio.ensure_future(session.closed.wait())
        try:
            done, _ = await asyncio.wait(
                {first, waiter},
                timeout=self.platform.settings.media_start_timeout_s + 1,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if first not in done:
                await session.close("no_key_frame")
                raise MediaError("no_key_frame", f"{pull.channel_id}: no picture arrived")
            self._generation += 1
            pull.generation = self._generation
            pull.info = await asyncio.to_thread(stream_info_of, first.result(), pull.generation)
        except BaseException:
            waiter.cancel()
            self._drop(pull)
            if not session.closed.is_set():
                await session.close("open_failed")
            raise
        self.first_frame_s.append(time.monotonic() - started)
        del self.first_frame_s[:-1000]
        self._fan_out(pull, first.result())
        self._spawn(self._watch(pull, waiter))
        log.info("GB channel %s pulled: %s %dx%d", pull.channel_id, pull.info.codec, pull.info.width, pull.info.height)

    def _fan_out(self, pull: _Pull, unit: AccessUnit) -> None:
        packet = VideoPacket(
            data=unit.data, pts=unit.pts, dts=unit.pts, key=unit.key, arrival=time.monotonic(),
            generation=pull.generation,
        )  # fmt: skip
        if packet.key:
            pull.gop.clear()
        if len(pull.gop) < MAX_GOP:
            pull.gop.append(packet)
        for sink in list(pull.sinks):
            try:
                sink(packet)
            except Exception:
                self.stats["sink_errors"] += 1
                log.exception("GB channel %s: a consumer failed", pull.channel_id)

    async def _watch(self, pull: _Pull, closed: asyncio.Future[Any]) -> None:
        await closed
        assert pull.session is not None
        reason = pull.session.close_reason
        if reason != "idle":
            self.stats[f"ended.{reason}"] += 1
            log.info("GB channel %s ended (%s)", pull.channel_id, reason)
        self._drop(pull)
        ends = list(pull.sinks.values())
        pull.sinks.clear()
        for end in ends:
            end(reason)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _drop(self, pull: _Pull) -> None:
        if self._pulls.get((pull.channel_id, pull.stream_number)) is pull:
            del self._pulls[(pull.channel_id, pull.stream_number)]

    def _leave(self, pull: _Pull) -> None:
        pull.users = max(0, pull.users - 1)
        if pull.users or pull.session is None or pull.session.closed.is_set():
            return
        loop = asyncio.get_running_loop()
        session = pull.session

        def release() -> None:
            pull.release = None
            if pull.users == 0:
                self.stats["released"] += 1
                self._drop(pull)
                self._spawn(session.close("idle"))

        if pull.release is None:
            pull.release = loop.call_later(self.grace_s, release)

    def request_key_frame(self, url_or_channel: str) -> bool:
        """Ask the channel's device for a key frame now (DeviceControl IFameCmd), e.g. when a viewer of an H.264
        channel passed through starts; rate-limited per channel, and only while the channel is pulled."""
        _, channel, stream = self._key(url_or_channel, None)
        pull = self._pulls.get((channel, stream))
        if pull is None or pull.session is None:
            return False
        return self.key_frames.request(channel)

    async def stop(self) -> None:
        await self.key_frames.stop()
        for pull in list(self._pulls.values()):
            if pull.release is not None:
                pull.release.cancel()
            if pull.session is not None:
                await pull.session.close("stopped")
        self._pulls.clear()

    # --- for capture threads ------------------------------------------------------------------------
    def open_threaded(
        self, url: str, stop: threading.Event, timeout_s: float, maxsize: int = 512
    ) -> tuple[StreamInfo, ThreadedFeed]:
        """From a capture thread: pull the channel and return its info and a blocking packet feed."""
        if self._loop is None:
            raise MediaError("not_started", "the GB/T 28181 puller has not run on its loop yet")
        feed = ThreadedFeed(self, url, stop, maxsize)
        future = asyncio.run_coroutine_threadsafe(self.hold(url, feed.put, feed.end), self._loop)
        try:
            info = future.result(timeout_s + self.platform.settings.invite_timeout_s)
        except TimeoutError:
            future.cancel()
            raise MediaError("timeout", f"{url}: no stream in time") from None
        return info, feed

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop


class ThreadedFeed:
    """A bounded queue between the event loop (``put``) and a capture thread (``get``)."""

    def __init__(self, puller: ChannelPuller, url: str, stop: threading.Event, maxsize: int) -> None:
        self._puller = puller
        self._url = url
        self._stop = stop
        self._queue: queue.Queue[VideoPacket | None] = queue.Queue(maxsize)
        self.dropped = 0
        self.ended = ""
        self._need_key = True

    def put(self, packet: VideoPacket) -> None:
        if self._need_key and not packet.key:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(packet)
            self._need_key = False
        except queue.Full:  # the capture thread is behind: drop, and start again at a key frame
            self.dropped += 1
            self._need_key = True

    def end(self, reason: str) -> None:
        self.ended = reason or "ended"
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def get(self, timeout_s: float) -> VideoPacket | None:
        """The next packet; None when the session ended. Raises ``queue.Empty`` after ``timeout_s``."""
        return self._queue.get(timeout=timeout_s)

    def close(self) -> None:
        loop = self._puller._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._puller.unhold, self._url, self.put)
