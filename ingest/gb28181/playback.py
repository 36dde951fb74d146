"""Look-back on a GB/T 28181 device: Playback (with pause, seek and speed over MANSRTSP) and Download to an MP4.

``open_playback`` INVITEs the channel's device with ``s=Playback``, ``u=<channel>:0``, ``t=<start> <end>`` (seconds
since the epoch) and a history SSRC (leading 1), and returns a ``PlaybackSession`` around the ``MediaSession`` whose
access units any consumer can take (the same RTP/PS machinery as live video). ``pause``, ``resume``, ``seek`` and
``speed`` send SIP INFO in the dialog with an ``Application/MANSRTSP`` body (``PAUSE``, ``PLAY`` with ``Range:
npt=<s>-`` and ``Scale``). A pause longer than the platform's ``media_timeout_s`` ends the session (no RTP flows).

``download`` INVITEs with ``s=Download`` and ``a=downloadspeed:N``, remuxes what arrives into an MP4 (no
re-encoding: the PS's H.264/H.265 access units, timed by their PTS) and ends once the range's length has arrived,
the device stopped sending for ``idle_s``, or ``limit_s`` passed; what came is kept, flagged incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sharpeye.ingest.gb28181.media import MediaSession
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.recording.segment import RecordingError, SegmentWriter
from sharpeye.ingest.transport.ps import AccessUnit
from sharpeye.ingest.transport.rtp import RtpMode
from sharpeye.ingest.transport.sip.endpoint import TransactionTimeout
from sharpeye.ingest.transport.sip.sdp import MediaDescription
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.subscription import PacketSubscription

log = logging.getLogger(__name__)

MANSRTSP = "Application/MANSRTSP"
MAX_RANGE_S = 24 * 3600


class PlaybackError(RuntimeError):
    """A playback or download could not start, or a control request was refused."""


def _range(start: datetime, end: datetime) -> tuple[int, int]:
    if start.tzinfo is None or end.tzinfo is None:
        raise PlaybackError("start and end must carry a time zone")
    a, b = int(start.timestamp()), int(end.timestamp())
    if b <= a:
        raise PlaybackError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    if b - a > MAX_RANGE_S:
        raise PlaybackError("a playback or download range is at most 24 hours")
    return a, b


def history_offer(kind: str, channel_id: str, start: int, end: int, speed: int | None = None) -> MediaDescription:
    """What a Playback/Download INVITE adds to the live offer (the platform fills in address, port and SSRC)."""
    return MediaDescription(
        owner="", ip="0.0.0.0", port=9, session=kind, time=(start, end), uri=f"{channel_id}:0",
        download_speed=speed,
    )  # fmt: skip


class PlaybackSession:
    """A device's recording being played; ``media`` gives its access units (``add_consumer``)."""

    def __init__(self, platform: GbPlatform, media: MediaSession, start: int, end: int) -> None:
        self.platform = platform
        self.media = media
        self.start = start
        self.end = end
        self.scale = 1.0
        self.paused = False
        self._cseq = itertools.count(1)

    async def _info(self, lines: list[str]) -> None:
        dialog = self.media.dialog
        if dialog is None or self.media.closed.is_set():
            raise PlaybackError("the playback session is closed")
        body = "\r\n".join([lines[0], f"CSeq: {next(self._cseq)}", *lines[1:]]) + "\r\n\r\n"
        msg = dialog.request("INFO")
        msg.add("Content-Type", MANSRTSP)
        msg.body = body.encode("ascii")
        try:
            response = await self.platform.endpoint.request(msg, dialog.peer, limit_s=5)
        except TransactionTimeout:
            self.platform.stats["playback.info_timeout"] += 1
            raise PlaybackError(f"no answer to {lines[0].split()[0]} from the device") from None
        if response.status != 200:
            self.platform.stats[f"playback.info_refused_{response.status}"] += 1
            raise PlaybackError(f"the device refused {lines[0].split()[0]}: {response.status} {response.reason}")
        self.platform.stats["playback.info"] += 1

    async def pause(self) -> None:
        await self._info(["PAUSE MANSRTSP/1.0", "PauseTime: now"])
        self.paused = True

    async def resume(self) -> None:
        await self._info(["PLAY MANSRTSP/1.0", "Range: npt=now-"])
        self.paused = False

    async def seek(self, seconds: float) -> None:
        """Play on from ``seconds`` after the range's start."""
        if not 0 <= seconds <= self.end - self.start:
            raise PlaybackError(f"seek to {seconds} s is outside the range of {self.end - self.start} s")
        await self._info(["PLAY MANSRTSP/1.0", f"Range: npt={seconds:g}-"])
        self.paused = False

    async def speed(self, scale: float) -> None:
        if scale not in (0.25, 0.5, 1, 2, 4, 8, 16):
            raise PlaybackError(f"speed {scale} is not one of 0.25, 0.5, 1, 2, 4, 8, 16")
        await self._info(["PLAY MANSRTSP/1.0", f"Scale: {scale:g}", "Range: npt=now-"])
        self.scale = scale

    async def close(self) -> None:
        await self.media.close()


async def open_playback(
    platform: GbPlatform,
    channel_id: str,
    start: datetime,
    end: datetime,
    *,
    transport: RtpMode | None = None,
) -> PlaybackSession:
    """INVITE ``s=Playback`` for the range; raises ``PlaybackError`` (bad range) or ``MediaError`` (no session)."""
    a, b = _range(start, end)
    media = await platform.invite(channel_id, transport=transport, history=history_offer("Playback", channel_id, a, b))
    platform.stats["playback.opened"] += 1
    return PlaybackSession(platform, media, a, b)


@dataclass(frozen=True, slots=True)
class DownloadResult:
    path: Path
    codec: str
    units: int
    seconds: float  # of recording received (by PTS)
    complete: bool
    reason: str  # range (all came), idle, limit, closed


async def download(
    platform: GbPlatform,
    channel_id: str,
    start: datetime,
    end: datetime,
    out: Path,
    *,
    speed: int = 4,
    idle_s: float = 3.0,
    limit_s: float | None = None,
    transport: RtpMode | None = None,
) -> DownloadResult:
    """INVITE ``s=Download`` at ``speed`` and remux the range into an MP4 at ``out``; see the module's docstring."""
    a, b = _range(start, end)
    if not 1 <= speed <= 16:
        raise PlaybackError(f"download speed {speed} is not 1-16")
    length = b - a
    limit = limit_s if limit_s is not None else length / speed * 2 + 10
    media = await platform.invite(
        channel_id, transport=transport, history=history_offer("Download", channel_id, a, b, speed)
    )
    platform.stats["download.opened"] += 1
    progress = _Download(part=out.with_name(out.name + ".part"), start=float(a), length=length)
    media.add_consumer(progress.consume)
    reason = "range"
    deadline = time.monotonic() + limit
    try:
        while not progress.done.is_set():
            if media.closed.is_set():
                reason = "closed"
                break
            last = media.receiver.last_packet
            now = time.monotonic()
            if last is not None and now - last > idle_s:
                reason = "idle"
                break
            if now > deadline:
                reason = "limit"
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await progress.done.wait()
    finally:
        media.remove_consumer(progress.consume)
        await media.close()
    writer = progress.writer
    if progress.error:
        if writer is not None:
            writer.discard()
        raise PlaybackError(f"download of {channel_id}: {progress.error}")
    if writer is None or progress.first is None:
        platform.stats["download.empty"] += 1
        raise PlaybackError(f"download of {channel_id}: no video came ({reason})")
    written = await asyncio.to_thread(writer.close)
    written.path.replace(out)
    complete = reason == "range"
    platform.stats["download.complete" if complete else "download.partial"] += 1
    seconds = (progress.last - progress.first) / 90000
    return DownloadResult(out, writer.info.codec, progress.units, seconds, complete, reason)


@dataclass
class _Download:
    """The MP4 being written from a Download's access units (on the event loop: muxing a unit is cheap)."""

    part: Path
    start: float
    length: int
    writer: SegmentWriter | None = None
    first: int | None = None
    last: int = 0
    units: int = 0
    error: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def consume(self, unit: AccessUnit) -> None:
        if unit.pts is None or self.error:
            return
        pts = int(unit.pts)
        try:
            if self.writer is None:
                info = StreamInfo(codec=unit.codec, width=0, height=0, time_base=(1, 90000))
                self.writer = SegmentWriter(self.part, info, self.start)
            self.writer.add(VideoPacket(data=unit.data, pts=pts, dts=None, key=unit.key, arrival=time.monotonic()))
        except (RecordingError, OSError, ValueError) as exc:
            self.error = str(exc)
            self.done.set()
            return
        if self.first is None:
            self.first = pts
        self.last = max(self.last, pts)
        self.units += 1
        if (self.last - self.first + 90000 / 25) / 90000 >= self.length:  # the range's length has arrived
            self.done.set()


class ForwardedPlayback:
    """A device's Playback or Download forwarded to someone else (the upper platform): its access units as a
    ``PacketSubscription`` (90 kHz timestamps), MANSRTSP bodies passed on to the device as they come."""

    def __init__(self, session: PlaybackSession, subscription: PacketSubscription) -> None:
        self.session = session
        self.subscription = subscription
        self.watch: asyncio.Task[None] | None = None

    async def control(self, body: bytes) -> None:
        """Pass a MANSRTSP request on (raises ``PlaybackError`` when the device refuses it)."""
        lines = [line for line in body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n") if line.strip()]
        lines = [line for line in lines if not line.lower().startswith("cseq:")]
        if not lines or not lines[0].upper().endswith("MANSRTSP/1.0"):
            raise PlaybackError("not a MANSRTSP request")
        await self.session._info(lines)


async def forward_history(
    platform: GbPlatform, channel_id: str, offer: MediaDescription, *, queue: int = 512, first_unit_s: float = 10.0
) -> ForwardedPlayback:
    """Open the offer's Playback/Download (its ``t=`` range and ``downloadspeed``) on the channel's device and give
    its units as a subscription once the first key frame came (its codec is then known). Raises ``PlaybackError``
    or ``MediaError``."""
    start, end = offer.time
    if end <= start or end - start > MAX_RANGE_S:
        raise PlaybackError(f"bad range t={start} {end}")
    kind = "Download" if offer.session == "Download" else "Playback"
    speed = offer.download_speed if kind == "Download" else None
    media = await platform.invite(channel_id, history=history_offer(kind, channel_id, start, end, speed))
    session = PlaybackSession(platform, media, start, end)
    loop = asyncio.get_running_loop()
    first: asyncio.Future[PacketSubscription] = loop.create_future()
    holder: list[PacketSubscription] = []
    closing: set[asyncio.Task[None]] = set()

    def closed(_sub: PacketSubscription) -> None:  # the subscriber left: BYE to the device
        media.remove_consumer(consume)
        task = loop.create_task(media.close())
        closing.add(task)
        task.add_done_callback(closing.discard)

    def consume(unit: AccessUnit) -> None:  # on the event loop (the RTP receiver's), from a key frame on
        if not holder:
            info = StreamInfo(codec=unit.codec, width=0, height=0, time_base=(1, 90000))
            holder.append(PacketSubscription(channel_id, loop, queue, info, closed))
            if not first.done():
                first.set_result(holder[0])
        packet = VideoPacket(data=unit.data, pts=unit.pts, dts=None, key=unit.key, arrival=time.monotonic())
        holder[0].push(packet, None)

    media.add_consumer(consume)
    try:
        async with asyncio.timeout(first_unit_s):
            sub = await first
    except TimeoutError:
        media.remove_consumer(consume)
        await media.close()
        raise PlaybackError(f"no video from the device's {kind} of {channel_id}") from None

    async def watch() -> None:  # the device's session ended: the subscriber sees the end
        await media.closed.wait()
        sub.close()

    forwarded = ForwardedPlayback(session, sub)
    forwarded.watch = loop.create_task(watch())
    platform.stats[f"forward.{kind.lower()}"] += 1
    return forwarded
