"""A lean RTP send loop for passthrough H.264 viewers, replacing aiortc's per-viewer ``RTCRtpSender._run_rtp``.

aiortc's own loop packetises every access unit again for every viewer, reads the wall clock and builds the
header extensions for every RTP packet, and goes through four coroutine layers (DTLS, ICE transport, ICE
connection, protocol) to send each datagram. Here each access unit is packetised once per camera
(``Packetizer``, shared by every viewer of the feed); per viewer only the 12-byte RTP header differs
(sequence number, timestamp, SSRC, marker), the header extensions (abs-send-time, mid) are serialised once per
access unit, and each packet is SRTP-protected and handed straight to the nominated ICE pair's UDP socket.

The kernel's UDP send is most of what a viewer costs (about 30 µs per datagram on loopback in a VM, where the
kernel also delivers to the browser's socket in the sender's time; a 2 Mbit/s camera is about 220 datagrams a
second). So an access unit's datagrams go out with UDP generic segmentation offload (GSO, Linux 4.18+): one
``sendmsg`` with a ``UDP_SEGMENT`` size carries a run of datagrams of equal size (the last may be shorter), and
the kernel (or the network card) cuts it. FU-A fragments are cut to equal sizes for this (``payloads``), so a
NAL unit of any size is one run. Where GSO is refused (an old kernel, a route whose MTU is too small) the viewer
falls back to one ``sendto`` per datagram.

The loop keeps what aiortc's RTCP and retransmission code read from the sender (history for NACKs, the
counters and timestamps of sender reports), so NACK, PLI and RTCP keep working. It touches aiortc private
attributes (checked against aiortc 1.16): ``install`` refuses a sender that lacks them, and the track then
runs on aiortc's own loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import os
import socket
import struct
import sys
import time
from collections import OrderedDict
from typing import Any

import av
from aiortc import RTCRtpSender
from aiortc.codecs.h264 import FU_A_HEADER_SIZE, NAL_HEADER_SIZE, PACKET_MAX, H264Encoder
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


# Linux's UDP_SEGMENT socket option (include/uapi/linux/udp.h); Python's socket module does not name it.
UDP_SEGMENT = 103
# At most this many segments per GSO send (the kernel's UDP_MAX_SEGMENTS is 64 on older kernels) and bytes in all
# (one UDP datagram's limit, 65,507 bytes over IPv4, with a margin).
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 60_000
# sendmsg errors that mean "no GSO here" (rather than a full buffer or an unreachable peer).
GSO_PLATFORM = sys.platform == "linux"
GSO_REFUSED = {errno.EINVAL, errno.EIO, errno.EOPNOTSUPP, errno.ENOPROTOOPT, errno.EMSGSIZE}


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (what aiortc computes through ``datetime`` on every packet)."""
    now = time.time() + NTP_UNIX_OFFSET_S
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * (1 << 32))


def fragment(nal: bytes) -> list[bytes]:
    """RFC 6184 FU-A packets of a NAL unit too large for one RTP packet, all of one size but the last.

    Same packet count as aiortc's (which balances sizes to differ by one byte); equal sizes let the packets of a
    NAL unit go out as one GSO run.
    """
    header, body = nal[:NAL_HEADER_SIZE], nal[NAL_HEADER_SIZE:]
    count = math.ceil(len(body) / (PACKET_MAX - FU_A_HEADER_SIZE))
    size = math.ceil(len(body) / count)
    indicator = (header[0] & 0xE0) | 28  # F and NRI of the NAL unit, type FU-A
    kind = header[0] & 0x1F
    packets = []
    for offset in range(0, len(body), size):
        end = offset + size >= len(body)
        flags = (0x80 if offset == 0 else 0) | (0x40 if end else 0)
        packets.append(bytes((indicator, flags | kind)) + body[offset : offset + size])
    return packets


class _EqualFragments(H264Encoder):
    """aiortc's packetiser (single NAL units, STAP-A aggregation) with ``fragment`` for FU-A."""

    @staticmethod
    def _packetize_fu_a(data: bytes) -> list[bytes]:
        return fragment(data)


def payloads(annexb: bytes) -> list[bytes]:
    """RTP payloads of one Annex B access unit."""
    result: list[bytes] = _EqualFragments._packetize(H264Encoder._split_bitstream(annexb))
    return result


def runs(sizes: list[int]) -> list[tuple[int, int]]:
    """``(start, end)`` index ranges of ``sizes`` that can go out as one GSO send each: every datagram of a run
    has the size of its first except the last, which may be shorter; bounded by ``GSO_MAX_SEGMENTS`` and
    ``GSO_MAX_BYTES``."""
    out: list[tuple[int, int]] = []
    start, n = 0, len(sizes)
    while start < n:
        size = sizes[start]
        limit = min(n, start + GSO_MAX_SEGMENTS, start + max(1, GSO_MAX_BYTES // size))
        end = start + 1
        while end < limit and sizes[end] == size:
            end += 1
        if end < limit and sizes[end] < size:
            end += 1
        out.append((start, end))
        start = end
    return out


class Datagrams:
    """One viewer's way out: an access unit's SRTP packets to the nominated pair's socket, by GSO runs where the
    kernel takes them, else one ``sendto`` each through the asyncio transport (which also buffers when full)."""

    def __init__(self, udp: Any, gso: bool = True) -> None:
        self.udp = udp
        self.gso = gso and GSO_PLATFORM
        self.gso_sends = 0
        self.sock: Any = None
        if self.gso:
            try:
                self.sock = udp.get_extra_info("socket").dup()
                self.sock.setblocking(False)
            except (AttributeError, OSError):
                self.gso = False

    def send(self, packets: list[bytes], addr: tuple[str, int]) -> None:
        if self.gso and self.sock is not None and len(packets) > 1 and not self.udp.is_closing():
            for start, end in runs([len(p) for p in packets]):
                # One datagram, or the transport holds datagrams the socket could not take: keep them in order.
                if end - start == 1 or self.udp.get_write_buffer_size() or not self._send_run(packets[start:end], addr):
                    for data in packets[start:end]:
                        self.udp.sendto(data, addr)
            return
        for data in packets:
            self.udp.sendto(data, addr)

    def _send_run(self, run: list[bytes], addr: tuple[str, int]) -> bool:
        """One GSO send of ``run``; False when it did not go (socket full, or GSO refused: then never again)."""
        assert self.sock is not None
        try:
            self.sock.sendmsg(run, [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(run[0])))], 0, addr)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in GSO_REFUSED:
                raise
            log.warning("UDP GSO refused (%s): this live viewer falls back to one sendto per datagram", exc)
            self.gso = False
            return False
        self.gso_sends += 1
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


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
        made = payloads(bytes(packet))
        self._cache[key] = (packet, made)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        self.packetised += 1
        return made


def supported(sender: RTCRtpSender) -> bool:
    """Whether ``sender`` has the aiortc internals the lean loop drives."""
    return all(hasattr(sender, name) for name in PRIVATE)


def install(sender: RTCRtpSender, packetizer: Packetizer, gso: bool = True) -> bool:
    """Make ``sender`` run the lean loop once it starts sending; False (aiortc's loop kept) if unsupported.
    ``gso``: send with UDP GSO where the kernel takes it (see ``Datagrams``)."""
    if not supported(sender):
        log.warning("aiortc internals changed: live view keeps aiortc's own RTP loop")
        return False

    async def run(codec: Any) -> None:
        await _run(sender, codec, packetizer, gso)

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


async def _run(sender: RTCRtpSender, codec: Any, packetizer: Packetizer, gso: bool) -> None:
    s: Any = sender
    s._RTCRtpSender__rtp_started.set()
    sequence = int.from_bytes(os.urandom(2), "big")
    timestamp_origin = int.from_bytes(os.urandom(4), "big")
    history: dict[int, RtpPacket] = s._RTCRtpSender__rtp_history
    extensions_map = s._RTCRtpSender__rtp_header_extensions_map
    payload_type = codec.payloadType
    track = s._RTCRtpSender__track
    out: Datagrams | None = None
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
            protected: list[bytes] = []
            for i, payload in enumerate(payloads):
                marker = 0x80 if i == last else 0
                rtp = RtpPacket(payload_type, marker >> 7, sequence, timestamp, ssrc, payload)
                rtp.extensions = extensions
                history[sequence % RTP_HISTORY_SIZE] = rtp
                data = HEADER.pack(first, marker | payload_type, sequence, timestamp, ssrc) + ext_block + payload
                if sink is None:
                    await dtls._send_rtp(data)
                else:
                    protected.append(sink[0].protect(data))
                octets += len(payload)
                sequence = (sequence + 1) & 0xFFFF
            if sink is not None:
                _, udp, addr = sink
                if out is None or out.udp is not udp:
                    if out is not None:
                        out.close()
                    out = Datagrams(udp, gso)
                out.send(protected, addr)
                dtls._RTCDtlsTransport__tx_bytes += sum(len(p) for p in protected)
                dtls._RTCDtlsTransport__tx_packets += len(protected)
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
    finally:
        if out is not None:
            out.close()
    if s._RTCRtpSender__track is not None:
        s._RTCRtpSender__track.stop()
        s._RTCRtpSender__track = None
    s._RTCRtpSender__rtp_exited.set()
