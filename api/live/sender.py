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
    "_retransmit",
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
GSO_PLATFORM = sys.platform == "linux"
# sendmsg errors that mean "no GSO here" (rather than a full buffer or an unreachable peer).
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
        """One GSO send of ``run``; False when it did not go (socket full, an error, or GSO refused: then never
        again for this viewer)."""
        assert self.sock is not None
        try:
            self.sock.sendmsg(run, [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(run[0])))], 0, addr)
        except BlockingIOError:
            return False
        except OSError as exc:
            # Other errors (an unreachable peer) go the transport's way: its sendto reports them to the protocol.
            if exc.errno in GSO_REFUSED:
                log.warning("UDP GSO refused (%s): this live viewer falls back to one sendto per datagram", exc)
                self.gso = False
            return False
        self.gso_sends += 1
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _Unit:
    """What a viewer sent of one access unit, enough to rebuild any of its RTP packets for a retransmission."""

    __slots__ = ("extensions", "first_sequence", "payload_type", "payloads", "ssrc", "timestamp")

    def __init__(
        self,
        payload_type: int,
        first_sequence: int,
        timestamp: int,
        ssrc: int,
        payloads: list[bytes],
        extensions: HeaderExtensions,
    ) -> None:
        self.payload_type = payload_type
        self.first_sequence = first_sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payloads = payloads
        self.extensions = extensions


class History:
    """A viewer's last ``RTP_HISTORY_SIZE`` RTP packets by ``sequence % RTP_HISTORY_SIZE``, as aiortc's sender keeps
    them for NACKs, but stored per access unit: the ``RtpPacket`` is only built when a viewer asks for it again."""

    def __init__(self) -> None:
        self._slots: list[_Unit | None] = [None] * RTP_HISTORY_SIZE

    def add(self, unit: _Unit) -> None:
        slots, start = self._slots, unit.first_sequence
        for k in range(min(len(unit.payloads), RTP_HISTORY_SIZE)):  # (seq + k) & 0xFFFF keeps seq % size
            slots[(start + k) % RTP_HISTORY_SIZE] = unit

    def get(self, key: int, default: RtpPacket | None = None) -> RtpPacket | None:
        """The packet whose ``sequence % RTP_HISTORY_SIZE`` is ``key`` (what aiortc's ``_retransmit`` asks)."""
        unit = self._slots[key % RTP_HISTORY_SIZE]
        if unit is None:
            return default
        count = len(unit.payloads)
        index = (key - unit.first_sequence) % RTP_HISTORY_SIZE
        if index >= count:
            return default
        # A unit of more than RTP_HISTORY_SIZE packets keeps its latest in each slot, as aiortc's history does.
        index += RTP_HISTORY_SIZE * ((count - 1 - index) // RTP_HISTORY_SIZE)
        last = index == count - 1
        packet = RtpPacket(
            unit.payload_type,
            int(last),
            (unit.first_sequence + index) & 0xFFFF,
            unit.timestamp,
            unit.ssrc,
            unit.payloads[index],
        )
        packet.extensions = unit.extensions
        return packet

    def clear(self) -> None:
        self._slots = [None] * RTP_HISTORY_SIZE


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
    history = History()
    s._RTCRtpSender__rtp_history = history  # aiortc's NACK handler reads it with .get()
    extensions_map = s._RTCRtpSender__rtp_header_extensions_map
    payload_type = codec.payloadType
    track = s._RTCRtpSender__track
    out: Datagrams | None = None
    pack = HEADER.pack
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
            history.add(_Unit(payload_type, sequence, timestamp, ssrc, payloads, extensions))
            count = len(payloads)
            datagrams = [
                pack(first, payload_type, (sequence + k) & 0xFFFF, timestamp, ssrc) + ext_block + payload
                for k, payload in enumerate(payloads)
            ]
            datagrams[-1] = (
                pack(first, 0x80 | payload_type, (sequence + count - 1) & 0xFFFF, timestamp, ssrc)
                + ext_block
                + payloads[-1]
            )
            sequence = (sequence + count) & 0xFFFF
            dtls = s.transport
            sink = _datagram_sink(dtls)
            if sink is None:
                for data in datagrams:
                    await dtls._send_rtp(data)
            else:
                srtp, udp, addr = sink
                protect = srtp.protect
                protected = [protect(data) for data in datagrams]
                if out is None or out.udp is not udp:
                    if out is not None:
                        out.close()
                    out = Datagrams(udp, gso)
                out.send(protected, addr)
                dtls._RTCDtlsTransport__tx_bytes += sum(map(len, protected))
                dtls._RTCDtlsTransport__tx_packets += count
            s._RTCRtpSender__ntp_timestamp = ntp
            s._RTCRtpSender__rtp_timestamp = timestamp
            s._RTCRtpSender__octet_count += sum(map(len, payloads))
            s._RTCRtpSender__packet_count += count
            # Let other viewers' loops and the feed run between access units: the next recv() waits by itself
            # when nothing is queued, so only a viewer with a backlog yields here (one loop turn less per unit).
            if getattr(track, "pending", 1):
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
