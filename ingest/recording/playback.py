"""SharpEye's own recordings played to someone else (the upper platform's Playback/Download, 录像回放 upward).

``RecordedPlayback`` reads a camera's segments (``RecordingStore``) over a time range and hands their packets, as
recorded (no decoding; the consumer re-frames MP4's length-prefixed NAL units to Annex B with the stream's
``extradata``), to a ``PacketSubscription`` paced like the camera sent them: real time times ``scale``. Timestamps
are 90 kHz from the range's start (a frame recorded at ``start + 2.5 s`` has PTS 225000), so every frame sent falls in
``[0, end - start]``. Playing starts at the first key frame at or after the asked moment (a decoder needs one; at
most a group of pictures is skipped). ``control`` takes the MANSRTSP requests the upper platform sends in SIP INFO:
``PAUSE``; ``PLAY`` with ``Range: npt=<s>-`` (seek, seconds from the range's start) or ``npt=now-`` (resume) and
``Scale`` (speed: 0.25 to 16); ``TEARDOWN`` ends. The subscription closes at the range's end (the upstream then says
BYE, after a ``MediaStatus`` 121 notification). A Download plays at its ``downloadspeed`` (default 4x, at most 16x).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from sharpeye.ingest.recording.segment import RecordingError
from sharpeye.ingest.recording.store import RecordingStore, Segment
from sharpeye.ingest.transport.sip.sdp import MediaDescription
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.subscription import PacketSubscription

from sharpeye.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
MAX_RANGE_S = 24 * 3600
CLOCK = 90000


class ControlError(ValueError):
    """A MANSRTSP request that is malformed or asks for what the recording cannot do."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One recorded packet: when it was recorded (seconds since the epoch), as stored, key frame or not."""

    wall: float
    data: bytes
    key: bool


def read_segment(path: str, seg_start: float) -> tuple[StreamInfo, list[Frame]]:
    """The packets of one segment with their wall times (blocking: run it in a thread). Raises ``RecordingError``."""
    try:
        container: Any = av.open(path)
    except (av.FFmpegError, OSError) as exc:
        raise RecordingError(f"recording {path} unreadable: {exc}") from exc
    try:
        if not container.streams.video:
            raise RecordingError(f"recording {path} has no video")
        stream = container.streams.video[0]
        tb = Fraction(stream.time_base)
        ctx = stream.codec_context
        info = StreamInfo(codec=ctx.name, width=ctx.width or 0, height=ctx.height or 0, time_base=(1, CLOCK),
                          extradata=bytes(ctx.extradata) if ctx.extradata else None, container="mp4")  # fmt: skip
        packets = [p for p in container.demux(stream) if p.size and (p.pts is not None or p.dts is not None)]
        if not packets:
            return info, []
        origin = min(int(p.dts if p.dts is not None else p.pts) for p in packets)
        frames = [
            Frame(seg_start + float((int(p.pts if p.pts is not None else p.dts) - origin) * tb), bytes(p),
                  bool(p.is_keyframe))
            for p in packets
        ]  # fmt: skip
        return info, frames
    except av.FFmpegError as exc:
        raise RecordingError(f"recording {path} unreadable: {exc}") from exc
    finally:
        container.close()


def parse_mansrtsp(body: bytes) -> tuple[str, dict[str, str]]:
    """(method, headers in lower case) of a MANSRTSP request; ``ControlError`` when it is not one."""
    lines = [line.strip() for line in body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        raise ControlError("empty MANSRTSP body")
    parts = lines[0].split()
    if len(parts) != 2 or parts[1].upper() != "MANSRTSP/1.0":
        raise ControlError(f"not a MANSRTSP request line: {lines[0][:60]!r}")
    if parts[0].upper() not in ("PLAY", "PAUSE", "TEARDOWN"):
        raise ControlError(f"MANSRTSP method {parts[0][:20]} is not supported (PLAY, PAUSE, TEARDOWN)")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ControlError(f"bad MANSRTSP header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0].upper(), headers


class RecordedPlayback:
    """A camera's recordings of ``[start, end)`` streamed into ``subscription`` at ``scale`` times real time.
    Build it with ``open`` (raises ``RecordingError`` when nothing is recorded in the range)."""

    def __init__(
        self, store: RecordingStore, camera_id: str, start: float, end: float, *, scale: float = 1.0, queue: int = 512
    ) -> None:
        if end <= start or end - start > MAX_RANGE_S:
            raise RecordingError(f"bad range {start:.0f}..{end:.0f} (at most 24 hours, end after start)")
        self.store = store
        self.camera_id = camera_id
        self.start = start
        self.end = end
        self.scale = scale
        self.paused = False
        self.stats: Counter[str] = Counter()
        self.position = start  # wall time of the last frame handed on (or where playing starts)
        loop = asyncio.get_running_loop()
        self.subscription = PacketSubscription(camera_id, loop, queue, None, self._closed)
        self._task: asyncio.Task[None] | None = None
        self._resume = asyncio.Event()
        self._resume.set()
        self._anchor: tuple[float, float] = (0.0, start)  # (loop time, wall time) that play time is measured from
        self._generation = 0
        self._extradata: bytes | None = None

    @classmethod
    async def open(
        cls, store: RecordingStore, camera_id: str, start: float, end: float, *, scale: float = 1.0
    ) -> RecordedPlayback:
        segments = store.segments(camera_id, start, end)
        if not segments:
            raise RecordingError(f"camera {camera_id} has no recording between {start:.0f} and {end:.0f}")
        playback = cls(store, camera_id, start, end, scale=min(max(scale, SCALES[0]), SCALES[-1]))
        info, _ = await asyncio.to_thread(read_segment, str(store.path(camera_id, segments[0].name)), segments[0].start)
        playback.subscription.info = info
        playback._extradata = info.extradata
        playback._play_from(start)
        return playback

    @classmethod
    async def for_offer(cls, store: RecordingStore, camera_id: str, offer: MediaDescription) -> RecordedPlayback:
        """The range (``t=``) an upper platform's Playback or Download INVITE asks for: a Download at its
        ``downloadspeed`` (default 4x), a Playback in real time."""
        speed = float(offer.download_speed or 4) if offer.session == "Download" else 1.0
        return await cls.open(store, camera_id, *offer.time, scale=speed)

    # --- control ----------------------------------------------------------------------------
    async def control(self, body: bytes) -> None:
        """Carry out one MANSRTSP request (raises ``ControlError``)."""
        method, headers = parse_mansrtsp(body)
        if method == "PAUSE":
            if not self.paused:
                self.paused = True
                self._resume.clear()
            self.stats["pause"] += 1
            return
        if method == "TEARDOWN":
            self.stats["teardown"] += 1
            self.subscription.close()
            return
        if "scale" in headers:
            try:
                scale = float(headers["scale"])
            except ValueError:
                raise ControlError(f"bad Scale {headers['scale']!r}") from None
            if scale not in SCALES:
                raise ControlError(f"Scale {scale:g} is not one of {', '.join(f'{s:g}' for s in SCALES)}")
            self._reanchor()
            self.scale = scale
            self.stats["scale"] += 1
        seek: float | None = None
        npt = headers.get("range", "")
        if npt:
            if not npt.lower().startswith("npt="):
                raise ControlError(f"bad Range {npt!r} (npt=<seconds>- or npt=now-)")
            first = npt[4:].split("-")[0].strip().lower()
            if first not in ("", "now"):
                try:
                    seek = float(first)
                except ValueError:
                    raise ControlError(f"bad Range {npt!r}") from None
                if not 0 <= seek <= self.end - self.start:
                    raise ControlError(f"Range npt={seek:g} is outside the {self.end - self.start:.0f} s played")
        if seek is not None:
            self.stats["seek"] += 1
            self.paused = False
            self._resume.set()
            self._play_from(self.start + seek)
            return
        if self.paused:
            self.paused = False
            self._reanchor()
            self._resume.set()
            self.stats["resume"] += 1

    def _reanchor(self) -> None:
        self._anchor = (asyncio.get_running_loop().time(), self.position)

    def _play_from(self, moment: float) -> None:
        if self._task is not None:
            self._task.cancel()
        self.position = moment
        self._reanchor()
        self._generation += 1
        self._task = asyncio.get_running_loop().create_task(self._run(moment, self._generation))

    # --- streaming --------------------------------------------------------------------------
    async def _run(self, moment: float, generation: int) -> None:
        loop = asyncio.get_running_loop()
        need_key = True
        done: set[str] = set()
        try:
            while True:
                pending = [s for s in self.store.segments(self.camera_id, moment, self.end) if s.name not in done]
                if not pending:
                    break
                seg: Segment = pending[0]
                done.add(seg.name)
                try:
                    info, frames = await asyncio.to_thread(
                        read_segment, str(self.store.path(self.camera_id, seg.name)), seg.start
                    )
                except (RecordingError, KeyError) as exc:  # deleted by retention meanwhile, or broken
                    self.stats["segment_unreadable"] += 1
                    log.info("playback of %s: segment %s skipped: %s", self.camera_id, seg.name, exc)
                    continue
                if info.extradata != self._extradata:  # the camera reconnected with other parameter sets
                    self._extradata = info.extradata
                    self.subscription.info = StreamInfo(
                        codec=info.codec, width=info.width, height=info.height, time_base=(1, CLOCK),
                        extradata=info.extradata, generation=generation * 1000 + len(done), container="mp4",
                    )  # fmt: skip
                for frame in frames:
                    if frame.wall < moment or frame.wall >= self.end:
                        continue
                    if need_key and not frame.key:
                        continue
                    need_key = False
                    await self._resume.wait()
                    anchor_loop, anchor_wall = self._anchor
                    delay = anchor_loop + (frame.wall - anchor_wall) / self.scale - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if self.paused:  # paused while waiting: wait again, then play from the new anchor
                        await self._resume.wait()
                    self.position = frame.wall
                    info_now = self.subscription.info
                    packet = VideoPacket(
                        data=frame.data, pts=round((frame.wall - self.start) * CLOCK), dts=None, key=frame.key,
                        arrival=time.monotonic(), generation=info_now.generation if info_now else 0,
                    )  # fmt: skip
                    self.subscription.push(packet, None)
                    self.stats["frames"] += 1
                moment = max(moment, seg.end)
            self.stats["ended"] += 1
            self.subscription.close()  # the range is played: the consumer sees the end
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats["failed"] += 1
            log.exception("playback of %s failed", self.camera_id)
            self.subscription.close()

    def _closed(self, _sub: PacketSubscription) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def close(self) -> None:
        self.subscription.close()
        if self._task is not None:
            await cancel_and_wait([self._task])
