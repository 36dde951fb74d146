"""One pulled GB/T 28181 stream: its dialog, its RTP receiver and the PS demuxer, giving access units to consumers.

RTP packets arrive in order (``RtpReceiver`` reorders); a frame ends at the RTP marker or when the timestamp
changes. After a loss the demuxer drops its partial data and consumers get nothing until the next key frame, so
a decoder downstream never sees a broken picture. ``watch()`` ends the session when no RTP arrives: never
started (``media_start_timeout_s``) or stalled (``media_timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
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
            self.demuxer.reset()
            self._need_key = True
            self.stats["resync_after_loss"] += 1
        units: list[AccessUnit] = []
        if self._last_ts is not None and packet.timestamp != self._last_ts:
            units += self.demuxer.flush()
        self._last_ts = packet.timestamp
        units += self.demuxer.feed(packet.payload)
        if packet.marker:
            units += self.demuxer.flush()
        for unit in units:
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), 0.2)

    async def close(self, reason: str = "released") -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
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
