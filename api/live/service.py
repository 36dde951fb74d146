"""The live-view service: WHEP sessions (one aiortc peer connection per viewer) over shared camera feeds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection, RTCRtpCodecCapability, RTCRtpSender, RTCSessionDescription
from sharpeye.api.live import sender
from sharpeye.api.live.feed import CameraFeed
from sharpeye.api.live.ice import restore_host_addresses, restrict_host_addresses, strip_mdns_candidates
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.live.source import LiveSource
from sharpeye.api.live.track import PacketTrack

log = logging.getLogger(__name__)

SourceFactory = Callable[[], LiveSource]
SourceResolver = Callable[[str], SourceFactory | None]
MAX_OFFER_BYTES = 64 * 1024


class UnknownCamera(LookupError):
    """No live source for this camera id."""


class ViewerLimit(RuntimeError):
    """Too many viewers at once."""


class BadOffer(ValueError):
    """The SDP offer could not be used (not SDP, no video, no H.264)."""


@dataclass
class ViewerSession:
    id: str
    camera_id: str
    pc: RTCPeerConnection
    track: PacketTrack
    opened_at: float = field(default_factory=time.monotonic)
    closed: bool = False
    reason: str = ""


def h264_preferences() -> list[RTCRtpCodecCapability]:
    """aiortc's H.264 codecs (with their retransmission codec) for ``setCodecPreferences``."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]


class LiveService:
    """Owns camera feeds and viewer sessions. ``start()`` and ``stop()`` belong to the app's lifespan.

    ``resolve(camera_id)`` returns a factory of the camera's ``LiveSource`` (called again to reconnect), or None
    when the id is not a camera.
    """

    def __init__(self, resolve: SourceResolver, settings: LiveSettings | None = None) -> None:
        self.settings = settings or LiveSettings()
        self._resolve = resolve
        self.feeds: dict[str, CameraFeed] = {}
        self.sessions: dict[str, ViewerSession] = {}
        self.dropped: dict[str, int] = {}
        self._started = False

    async def start(self) -> None:
        restrict_host_addresses(self.settings.ice_addresses)
        self._started = True

    async def stop(self) -> None:
        """Close every viewer connection and stop every feed."""
        self._started = False
        await asyncio.gather(*(self.close(sid, "shutdown") for sid in list(self.sessions)), return_exceptions=True)
        await asyncio.gather(*(feed.stop() for feed in self.feeds.values()), return_exceptions=True)
        self.feeds.clear()
        restore_host_addresses()

    def viewers(self, camera_id: str) -> int:
        return sum(1 for s in self.sessions.values() if s.camera_id == camera_id)

    def feed(self, camera_id: str) -> CameraFeed:
        """The camera's feed, created on first use; raises ``UnknownCamera``."""
        feed = self.feeds.get(camera_id)
        if feed is None:
            factory = self._resolve(camera_id)
            if factory is None:
                raise UnknownCamera(camera_id)
            feed = CameraFeed(camera_id, factory, self.settings.queue_packets, self.settings.idle_stop_s)
            self.feeds[camera_id] = feed
        return feed

    async def open(self, camera_id: str, offer_sdp: str) -> tuple[ViewerSession, str]:
        """Answer a viewer's SDP offer: returns the session and the SDP answer (all candidates included)."""
        if not self._started:
            raise RuntimeError("live service not started")
        if len(offer_sdp) > MAX_OFFER_BYTES or not offer_sdp.startswith("v=0") or "m=video" not in offer_sdp:
            raise BadOffer("expected an SDP offer with a video section")
        if len(self.sessions) >= self.settings.max_viewers:
            raise ViewerLimit(f"{len(self.sessions)} viewers already")
        feed = self.feed(camera_id)
        session_id = secrets.token_urlsafe(12)
        pc = RTCPeerConnection()

        def dropped(reason: str) -> None:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
            log.info("live viewer %s of %s dropped: %s", session_id, camera_id, reason)
            asyncio.get_running_loop().create_task(self.close(session_id, reason))

        subscription = feed.subscribe(on_drop=dropped)
        track = PacketTrack(subscription)
        session = ViewerSession(session_id, camera_id, pc, track)
        self.sessions[session_id] = session
        try:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            # Before setRemoteDescription, or aiortc negotiates the offer's first codec (VP8 from browsers) and
            # H.264 packets sent as VP8 show as black video.
            transceiver.setCodecPreferences(h264_preferences())
            # A picture-loss report from the viewer asks the camera's encoder (shared, rate-limited) for a key frame.
            transceiver.sender._send_keyframe = feed.request_key_frame  # type: ignore[method-assign]
            # Payloads packetised once per camera, sent by a lean loop (see api/live/sender.py).
            sender.install(transceiver.sender, feed.packetizer, self.settings.udp_gso)

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    await self.close(session_id, pc.connectionState)

            await pc.setRemoteDescription(RTCSessionDescription(strip_mdns_candidates(offer_sdp), "offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            await self.close(session_id, "bad offer")
            raise BadOffer(str(exc) or type(exc).__name__) from exc
        asyncio.get_running_loop().call_later(self.settings.connect_timeout_s, self._check_connected, session_id)
        log.info("live viewer %s opened %s (%d viewers)", session_id, camera_id, feed.viewers)
        return session, pc.localDescription.sdp

    def _check_connected(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.pc.connectionState != "connected":
            self.dropped["connect timeout"] = self.dropped.get("connect timeout", 0) + 1
            asyncio.get_running_loop().create_task(self.close(session_id, "connect timeout"))

    async def close(self, session_id: str, reason: str = "left") -> bool:
        """Close a viewer's connection; False when there was no such session."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        session.closed = True
        session.reason = reason
        session.track.stop()
        with contextlib.suppress(Exception):
            await session.pc.close()
        log.info("live viewer %s of %s closed: %s", session_id, session.camera_id, reason)
        return True
