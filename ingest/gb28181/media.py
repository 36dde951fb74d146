"""One pulled GB/T 28181 stream: its dialog, its RTP receiver and the PS demuxer, giving access units to consumers.

RTP packets arrive in order (``RtpReceiver`` reorders); a frame ends at the RTP marker or when the timestamp
changes. After a loss the demuxer drops its partial data and consumers get nothing until the next key frame, so
a decoder downstream never sees a broken picture. ``watch()`` ends the session when no RTP arrives: never
started (``media_start_timeout_s``) or stalled (``media_timeout_s``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sharpeye.ingest.transport.ps import AccessUnit, PsDemuxer
from sharpeye.ingest.transport.rtp import RtpPacket, RtpReceiver
from sharpeye.ingest.transport.sip.dialog import Dialog
from sharpeye.ingest.transport.sip.sdp import MediaDescription

log = logging.getLogger(__name__)

OnUnit = Callable[[AccessUnit], None]
MAX_FRAME = 4 * 1024 * 1024  # a frame larger than this is parsed in parts


@dataclass(frozen=True, slots=True)
class SessionKey:
    device_id: str
    channel_id: str
    stream_number: int


class MediaSession:
    """Created by ``GbPlatform.invite``; ``close()`` sends BYE (once) and releases the port."""

    def __init__(
        self,
        key: SessionKey,
        receiver: RtpReceiver,
        offer: MediaDescription,
        release: Callable[[MediaSession, str], asyncio.Future[None] | None],
    ) -> None:
        self.key = key
        self.receiver = receiver
        self.offer = offer
        self.answer: MediaDescription | None = None
        self.dialog: Dialog | None = None
        self.demuxer = PsDemuxer()
        self.stats: Counter[str] = Counter()
        self.opened_at = time.monotonic()
        self.first_unit_at: float | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.codec = ""
        self._consumers: list[OnUnit] = []
        self._release = release
        self._need_key = True
        self._last_ts: int | None = None
        self._lost_seen = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._wake: asyncio.Future[None] | None = None

    @property
    def ssrc(self) -> int:
        return self.offer.ssrc_value

    @property
    def call_id(self) -> str:
        return self.dialog.call_id if self.dialog else ""

    def add_consumer(self, consumer: OnUnit) -> None:
        self._consumers.append(consumer)

    def remove_consumer(self, consumer: OnUnit) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    def on_packet(self, packet: RtpPacket) -> None:
        """Called by the receiver, in sequence order."""
        lost = self.receiver.reorder.lost
        if lost != self._lost_seen:  # a gap: what was gathered is broken
            self._lost_seen = lost
            self._pending.clear()
            self._pending_bytes = 0
            self.demuxer.reset()
            self._need_key = True
            self.stats["resync_after_loss"] += 1
        # A frame's payloads are gathered and parsed at once when it ends (marker, or a new timestamp): one PS
        # parse per frame instead of one per packet.
        if self._last_ts is not None and packet.timestamp != self._last_ts and self._pending:
            self._frame_end()
        self._last_ts = packet.timestamp
        self._pending.append(packet.payload)
        self._pending_bytes += len(packet.payload)
        if packet.marker or self._pending_bytes > MAX_FRAME:
            self._frame_end()

    def _frame_end(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        for unit in self.demuxer.feed(data) + self.demuxer.flush():
            self._emit(unit)

    def _emit(self, unit: AccessUnit) -> None:
        if not unit.codec or unit.codec not in ("h264", "hevc"):
            self.stats["drop.unknown_codec"] += 1
            return
        if self._need_key:
            if not unit.key:
                self.stats["drop.wait_key"] += 1
                return
            self._need_key = False
        self.codec = unit.codec
        self.stats["units"] += 1
        if self.first_unit_at is None:
            self.first_unit_at = time.monotonic()
        for consumer in list(self._consumers):
            try:
                consumer(unit)
            except Exception:
                self.stats["consumer_errors"] += 1
                log.exception("GB media consumer failed")

    async def watch(self, start_limit_s: float, stall_limit_s: float) -> None:
        """Close the session when RTP never starts or stops; returns when the session is closed."""
        loop = asyncio.get_running_loop()
        while not self.closed.is_set():
            now = time.monotonic()
            last = self.receiver.last_packet
            if last is None and now - self.opened_at > start_limit_s:
                self.stats["never_started"] += 1
                await self.close("never_started")
                return
            if last is not None and now - last > stall_limit_s:
                self.stats["stalled"] += 1
                await self.close("stalled")
                return
            # a plain timer, not wait_for (a task per turn): the check is cheap, the session count large
            wake = loop.create_future()
            handle = loop.call_later(0.25, wake.set_result, None)
            self._wake = wake
            await wake
            handle.cancel()

    async def close(self, reason: str = "released") -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        pending = self._release(self, reason)
        if pending is not None:
            await pending

    def snapshot(self) -> dict[str, object]:
        r = self.receiver
        return {
            "device_id": self.key.device_id,
            "channel_id": self.key.channel_id,
            "stream_number": self.key.stream_number,
            "call_id": self.call_id,
            "ssrc": self.offer.ssrc,
            "mode": r.mode,
            "port": r.port,
            "codec": self.codec,
            "packets": r.stats["packets"],
            "lost": r.lost,
            "units": self.stats["units"],
            "closed": self.close_reason or None,
        }
