"""A lean RTP send loop for passthrough H.264 viewers, replacing aiortc's per-viewer ``RTCRtpSender._run_rtp``.

aiortc's own loop packetises every access unit again for every viewer, reads the wall clock and builds the
header extensions for every RTP packet, and goes through four coroutine layers (DTLS, ICE transport, ICE
connection, protocol) to send each datagram. Here each access unit is packetised once per camera
(``Packetizer``, shared by every viewer of the feed); per viewer only the 12-byte RTP header differs
(sequence number, timestamp, SSRC, marker), the header extensions (abs-send-time, mid) are serialised once per
access unit, and each packet is SRTP-protected and handed straight to the nominated ICE pair's UDP socket.

The loop keeps what aiortc's RTCP and retransmission code read from the sender (history for NACKs, the
counters and timestamps of sender reports), so NACK, PLI and RTCP keep working. It touches aiortc private
attributes (checked against aiortc 1.16): ``install`` refuses a sender that lacks them, and the track then
runs on aiortc's own loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections import OrderedDict
from typing import Any

import av
from aiortc import RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, RtpPacket

log = logging.getLogger(__name__)

NTP_UNIX_OFFSET_S = 2_208_988_800
HEADER = struct.Struct("!BBHLL")
PRIVATE = (
    "_RTCRtpSender__track",
    "_RTCRtpSender__mid",
    "_RTCRtpSender__rtp_history",
    "_RTCRtpSender__rtp_header_extensions_map",
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
)


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (what aiortc computes through ``datetime`` on every packet)."""
    now = time.time() + NTP_UNIX_OFFSET_S
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * (1 << 32))


class Packetizer:
    """RTP payloads (RFC 6184 single NAL, STAP-A, FU-A) of a camera's H.264 access units, made once per unit.

    Every viewer of a feed receives the same ``av.Packet`` object, so payloads are cached by identity for the
    last ``size`` units (viewers a few units behind still hit the cache).
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._cache: OrderedDict[int, tuple[av.Packet[Any], list[bytes]]] = OrderedDict()
        self.packetised = 0
        self.shared = 0

    def payloads(self, packet: av.Packet[Any]) -> list[bytes]:
        key = id(packet)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is packet:
            self.shared += 1
            return hit[1]
        payloads: list[bytes] = H264Encoder._packetize(H264Encoder._split_bitstream(bytes(packet)))
        self._cache[key] = (packet, payloads)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        self.packetised += 1
        return payloads


def supported(sender: RTCRtpSender) -> bool:
    """Whether ``sender`` has the aiortc internals the lean loop drives."""
    return all(hasattr(sender, name) for name in PRIVATE)


def install(sender: RTCRtpSender, packetizer: Packetizer) -> bool:
    """Make ``sender`` run the lean loop once it starts sending; False (aiortc's loop kept) if unsupported."""
    if not supported(sender):
        log.warning("aiortc internals changed: live view keeps aiortc's own RTP loop")
        return False

    async def run(codec: Any) -> None:
        await _run(sender, codec, packetizer)

    sender._run_rtp = run  # type: ignore[method-assign]
    return True


def _datagram_sink(dtls: Any) -> tuple[Any, Any, tuple[str, int]] | None:
    """(SRTP session, UDP transport, remote address) of the nominated ICE pair, or None if not there (yet)."""
    if getattr(dtls, "_state", None) != DtlsState.CONNECTED:
        return None
    srtp = getattr(dtls, "_tx_srtp", None)
    connection = getattr(dtls.transport, "_connection", None)
    nominated = getattr(connection, "_nominated", None)
    pair = nominated.get(1) if isinstance(nominated, dict) else None
    udp = getattr(getattr(pair, "protocol", None), "transport", None)
    if srtp is None or pair is None or udp is None:
        return None
    return srtp, udp, pair.remote_addr


async def _run(sender: RTCRtpSender, codec: Any, packetizer: Packetizer) -> None:
    s: Any = sender
    s._RTCRtpSender__rtp_started.set()
    sequence = int.from_bytes(os.urandom(2), "big")
    timestamp_origin = int.from_bytes(os.urandom(4), "big")
    history: dict[int, RtpPacket] = s._RTCRtpSender__rtp_history
    extensions_map = s._RTCRtpSender__rtp_header_extensions_map
    payload_type = codec.payloadType
    track = s._RTCRtpSender__track
    try:
        while True:
            if track is None:
                raise MediaStreamError("no track")
            packet = await track.recv()
            if not s._enabled:
                continue
            payloads = packetizer.payloads(packet)
            if not payloads:
                continue
            timestamp = (timestamp_origin + int(packet.pts or 0)) & 0xFFFFFFFF
            ntp = ntp_now()
            extensions = HeaderExtensions()
            extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
            extensions.mid = s._RTCRtpSender__mid
            profile, ext_value = extensions_map.set(extensions)
            ext_block = struct.pack("!HH", profile, len(ext_value) >> 2) + ext_value if ext_value else b""
            first = 0x90 if ext_block else 0x80
            ssrc = s._ssrc
            dtls = s.transport
            sink = _datagram_sink(dtls)
            last = len(payloads) - 1
            octets = 0
            for i, payload in enumerate(payloads):
                marker = 0x80 if i == last else 0
                rtp = RtpPacket(payload_type, marker >> 7, sequence, timestamp, ssrc, payload)
                rtp.extensions = extensions
                history[sequence % RTP_HISTORY_SIZE] = rtp
                data = HEADER.pack(first, marker | payload_type, sequence, timestamp, ssrc) + ext_block + payload
                if sink is None:
                    await dtls._send_rtp(data)
                else:
                    srtp, udp, addr = sink
                    protected = srtp.protect(data)
                    udp.sendto(protected, addr)
                    dtls._RTCDtlsTransport__tx_bytes += len(protected)
                    dtls._RTCDtlsTransport__tx_packets += 1
                octets += len(payload)
                sequence = (sequence + 1) & 0xFFFF
            s._RTCRtpSender__ntp_timestamp = ntp
            s._RTCRtpSender__rtp_timestamp = timestamp
            s._RTCRtpSender__octet_count += octets
            s._RTCRtpSender__packet_count += len(payloads)
            # Let other viewers' loops and the feed run between access units.
            await asyncio.sleep(0)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        log.exception("live RTP loop failed")
    if s._RTCRtpSender__track is not None:
        s._RTCRtpSender__track.stop()
        s._RTCRtpSender__track = None
    s._RTCRtpSender__rtp_exited.set()
