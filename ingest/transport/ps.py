"""MPEG-2 program stream (ISO/IEC 13818-1 2.5) as GB/T 28181 carries it over RTP: demux to access units, and mux.

``PsDemuxer`` is fed RTP payloads in order and gives back whole H.264/H.265 access units (Annex B) with their
90 kHz PTS; the program stream map's stream type says the codec (0x1B H.264, 0x24 H.265; without a map the
first NAL units are sniffed). Garbage between packs is skipped to the next start code and counted, never raised.
``PsMuxer`` writes what GB/T 28181 receivers expect: a pack header on every frame, a system header and a program
stream map before every key frame, and the frame in PES packets of at most 64 KiB.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

STREAM_TYPES = {0x1B: "h264", 0x24: "hevc", 0x10: "mpeg4", 0x80: "svac"}
STREAM_TYPE_OF = {"h264": 0x1B, "hevc": 0x24, "h265": 0x24}
VIDEO_ID = 0xE0
MAX_BUFFER = 4 * 1024 * 1024  # a frame larger than this is garbage
PES_CHUNK = 65_000


@dataclass(frozen=True, slots=True)
class AccessUnit:
    data: bytes  # Annex B
    pts: int | None  # 90 kHz
    key: bool
    codec: str  # "h264", "hevc", or "" when not known yet


def nal_types(data: bytes, codec: str) -> list[int]:
    """NAL unit types of an Annex B buffer."""
    out: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        head = data[i + 3]
        out.append((head >> 1) & 0x3F if codec == "hevc" else head & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return out


def is_key(data: bytes, codec: str) -> bool:
    """An IDR/IRAP picture, or parameter sets in front of one."""
    types = nal_types(data, codec)
    if codec == "hevc":
        return any(16 <= t <= 21 for t in types)
    return 5 in types


def sniff_codec(data: bytes) -> str:
    """Guess H.264 or H.265 from the first NAL units (used only when no program stream map came)."""
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 4 < len(data):
        head, second = data[i + 3], data[i + 4]
        if head & 0x80 == 0 and (head >> 1) & 0x3F in (32, 33, 34, 35) and second == 0x01:
            return "hevc"
        if head & 0x1F in (7, 8, 9) and head & 0x80 == 0:
            return "h264"
        i = data.find(b"\x00\x00\x01", i + 3)
    return ""


def _pts(b: bytes | bytearray, at: int) -> int:
    return (
        ((b[at] >> 1) & 0x07) << 30
        | b[at + 1] << 22
        | ((b[at + 2] >> 1) & 0x7F) << 15
        | b[at + 3] << 7
        | ((b[at + 4] >> 1) & 0x7F)
    )


class PsDemuxer:
    """Program stream bytes in, access units out. ``stats`` counts what was skipped and why."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._au = bytearray()
        self._au_pts: int | None = None
        self.codec = ""
        self.stream_types: dict[int, int] = {}
        self.stats: Counter[str] = Counter()
        self._synced = False

    def reset(self) -> None:
        """Forget partial data (after RTP loss): wait for the next pack header."""
        self._buf.clear()
        self._au.clear()
        self._au_pts = None
        self._synced = False

    def feed(self, data: bytes) -> list[AccessUnit]:
        self._buf += data
        out: list[AccessUnit] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            if buf[pos] != 0 or buf[pos + 1] != 0 or buf[pos + 2] != 1 or (not self._synced and buf[pos + 3] != 0xBA):
                nxt = buf.find(b"\x00\x00\x01\xba", pos + 1)
                skip = (nxt if nxt >= 0 else max(pos, n - 3)) - pos
                if skip:
                    self.stats["garbage_bytes"] += skip
                pos += skip
                if nxt < 0:
                    break
                continue
            sid = buf[pos + 3]
            if sid == 0xBA:
                if n - pos < 14:
                    break
                if buf[pos + 4] >> 6 == 1:
                    total = 14 + (buf[pos + 13] & 0x07)
                elif buf[pos + 4] >> 4 == 2:  # MPEG-1 pack header
                    total = 12
                else:
                    self.stats["bad_pack_header"] += 1
                    pos += 4
                    self._synced = False
                    continue
                self._synced = True
                pos += total
                continue
            if sid == 0xB9:  # end code
                pos += 4
                continue
            if sid < 0xBB:
                self.stats["bad_start_code"] += 1
                self._synced = False
                pos += 4
                continue
            if n - pos < 6:
                break
            (length,) = struct.unpack_from("!H", buf, pos + 4)
            total = 6 + length
            if n - pos < total:
                break
            if sid == 0xBC:
                self._map(bytes(buf[pos : pos + total]))
            elif 0xE0 <= sid <= 0xEF:
                unit = self._video(buf, pos, total)
                if unit is not None:
                    out.append(unit)
            else:
                self.stats["other_stream"] += 1  # audio, padding, private: not carried
            pos += total
        del buf[:pos]
        if len(buf) > MAX_BUFFER:
            self.stats["oversize"] += 1
            self.reset()
        return out

    def flush(self) -> list[AccessUnit]:
        """The frame gathered so far is complete (RTP marker, or a new RTP timestamp)."""
        if not self._au:
            return []
        data = bytes(self._au)
        self._au.clear()
        pts, self._au_pts = self._au_pts, None
        if not self.codec:
            self.codec = sniff_codec(data)
        return [AccessUnit(data, pts, is_key(data, self.codec), self.codec)]

    def _map(self, psm: bytes) -> None:
        if len(psm) < 16:
            self.stats["bad_psm"] += 1
            return
        (info_len,) = struct.unpack_from("!H", psm, 8)
        at = 10 + info_len
        if at + 2 > len(psm):
            self.stats["bad_psm"] += 1
            return
        (map_len,) = struct.unpack_from("!H", psm, at)
        at += 2
        end = min(at + map_len, len(psm) - 4)
        while at + 4 <= end:
            stream_type, stream_id = psm[at], psm[at + 1]
            (es_len,) = struct.unpack_from("!H", psm, at + 2)
            self.stream_types[stream_id] = stream_type
            at += 4 + es_len
        video = next((t for sid, t in self.stream_types.items() if 0xE0 <= sid <= 0xEF), None)
        if video is not None:
            codec = STREAM_TYPES.get(video, "")
            if not codec:
                self.stats["unknown_stream_type"] += 1
            elif codec != self.codec:
                self.codec = codec
        self.stats["psm"] += 1

    def _video(self, buf: bytearray, pos: int, total: int) -> AccessUnit | None:
        if total < 9 or buf[pos + 6] >> 6 != 2:
            self.stats["bad_pes"] += 1
            return None
        flags, header_len = buf[pos + 7], buf[pos + 8]
        start = pos + 9 + header_len
        if start > pos + total:
            self.stats["bad_pes"] += 1
            return None
        pts = _pts(buf, pos + 9) if flags & 0x80 and header_len >= 5 else None
        unit = None
        if pts is not None and self._au and pts != self._au_pts:
            flushed = self.flush()
            unit = flushed[0] if flushed else None
        if pts is not None and not self._au:
            self._au_pts = pts
        self._au += buf[start : pos + total]
        return unit


# --- muxing -------------------------------------------------------------------------------------------


def _crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def _ts_bytes(prefix: int, value: int) -> bytes:
    return bytes(
        (
            (prefix << 4) | ((value >> 29) & 0x0E) | 1,
            (value >> 22) & 0xFF,
            ((value >> 14) & 0xFE) | 1,
            (value >> 7) & 0xFF,
            ((value << 1) & 0xFE) | 1,
        )
    )


def pack_header(scr: int, mux_rate: int = 6106) -> bytes:
    scr &= (1 << 33) - 1
    return b"\x00\x00\x01\xba" + bytes(
        (
            0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03),
            (scr >> 20) & 0xFF,
            ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
            (scr >> 5) & 0xFF,
            ((scr << 3) & 0xF8) | 0x04,
            0x01,
            (mux_rate >> 14) & 0xFF,
            (mux_rate >> 6) & 0xFF,
            ((mux_rate << 2) & 0xFC) | 0x03,
            0xF8,
        )
    )


def system_header(rate_bound: int = 6106) -> bytes:
    bound = (1 << 23) | (rate_bound << 1) | 1
    body = bound.to_bytes(3, "big") + bytes((0x04, 0xE1, 0xFF, VIDEO_ID, 0xE0 | 0x04, 0x00))
    return b"\x00\x00\x01\xbb" + struct.pack("!H", len(body)) + body


def program_stream_map(stream_type: int, version: int = 0) -> bytes:
    entries = bytes((stream_type, VIDEO_ID, 0, 0))
    body = bytes((0x80 | 0x60 | (version & 0x1F), 0xFF)) + struct.pack("!H", 0)
    body += struct.pack("!H", len(entries)) + entries
    head = b"\x00\x00\x01\xbc" + struct.pack("!H", len(body) + 4)
    crc = _crc32_mpeg(head + body)
    return head + body + struct.pack("!I", crc)


def pes_packets(data: bytes, pts: int | None) -> bytes:
    out = bytearray()
    for at in range(0, max(len(data), 1), PES_CHUNK):
        chunk = data[at : at + PES_CHUNK]
        if at == 0 and pts is not None:
            header = bytes((0x80, 0x80, 5)) + _ts_bytes(0x2, pts & ((1 << 33) - 1))
        else:
            header = bytes((0x80, 0x00, 0))
        out += b"\x00\x00\x01" + bytes((VIDEO_ID,)) + struct.pack("!H", len(header) + len(chunk)) + header + chunk
    return bytes(out)


class PsMuxer:
    """One access unit in, one PS unit (pack [+ system header + map] + PES) out."""

    def __init__(self, codec: str) -> None:
        if codec not in STREAM_TYPE_OF:
            raise ValueError(f"PS carries H.264 or H.265 here, not {codec!r}")
        self.stream_type = STREAM_TYPE_OF[codec]

    def mux(self, data: bytes, pts: int | None, key: bool) -> bytes:
        out = pack_header(pts or 0)
        if key:
            out += system_header() + program_stream_map(self.stream_type)
        return out + pes_packets(data, pts)


# --- camera packets to Annex B ------------------------------------------------------------------------

PARAMETER_SETS = {"h264": frozenset((7, 8)), "hevc": frozenset((32, 33, 34))}


def _length_prefixed(data: bytes, size: int) -> list[bytes]:
    """NAL units of an AVCC/HVCC (length-prefixed) buffer; raises ``ValueError`` when a length overruns."""
    out: list[bytes] = []
    at = 0
    while at + size <= len(data):
        n = int.from_bytes(data[at : at + size], "big")
        at += size
        if n == 0 or at + n > len(data):
            raise ValueError(f"NAL length {n} overruns the packet at {at}")
        out.append(data[at : at + n])
        at += n
    return out


def parameter_sets(codec: str, extradata: bytes | None) -> tuple[int, bytes]:
    """From a container's codec extradata: (NAL length size, or 0 when packets are Annex B already; the parameter
    sets as Annex B). ``avcC`` (ISO/IEC 14496-15 5.3.3) and ``hvcC`` (8.3.3) records start with version 1; anything
    else is taken as Annex B. Raises ``ValueError`` on a truncated record."""
    if not extradata:
        return 0, b""
    if extradata[0] != 1:
        return 0, bytes(extradata)
    nals: list[bytes] = []
    try:
        if codec == "h264":
            size = (extradata[4] & 0x03) + 1
            at = 5
            for table in range(2):
                count = extradata[at] & (0x1F if table == 0 else 0xFF)
                at += 1
                for _ in range(count):
                    n = struct.unpack_from("!H", extradata, at)[0]
                    nals.append(extradata[at + 2 : at + 2 + n])
                    at += 2 + n
        else:
            size = (extradata[21] & 0x03) + 1
            arrays = extradata[22]
            at = 23
            for _ in range(arrays):
                count = struct.unpack_from("!H", extradata, at + 1)[0]
                at += 3
                for _ in range(count):
                    n = struct.unpack_from("!H", extradata, at)[0]
                    nals.append(extradata[at + 2 : at + 2 + n])
                    at += 2 + n
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated {codec} decoder configuration record") from exc
    if any(len(n) == 0 for n in nals) or at > len(extradata):
        raise ValueError(f"truncated {codec} decoder configuration record")
    return size, b"".join(b"\x00\x00\x00\x01" + n for n in nals)


class AnnexB:
    """A camera's packets as GB/T 28181 PS wants them: Annex B, with the parameter sets in front of every key frame.

    RTSP and MPEG-TS cameras already give Annex B (their parameter sets may come only in the SDP, i.e. the
    extradata); MP4/Matroska files give length-prefixed NAL units and an ``avcC``/``hvcC`` record. Nothing is
    re-encoded: NAL units are only re-framed."""

    def __init__(self, codec: str, extradata: bytes | None) -> None:
        self.codec = codec
        self.length_size, self.params = parameter_sets(codec, extradata)
        self._param_types = PARAMETER_SETS.get(codec, frozenset())

    def __call__(self, data: bytes, key: bool) -> bytes:
        if self.length_size:
            data = b"".join(b"\x00\x00\x00\x01" + n for n in _length_prefixed(data, self.length_size))
        if key and self.params and not self._param_types.intersection(nal_types(data, self.codec)):
            data = self.params + data
        return data


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B buffer, without start codes (trailing zero bytes belong to the next start code)."""
    out: list[bytes] = []
    starts: list[tuple[int, int]] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append((i, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    for k, (_, begin) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(data)
        out.append(data[begin:end].rstrip(b"\x00") if k + 1 < len(starts) else data[begin:end])
    return out


def rtp_payloads(ps: bytes, size: int = 1400) -> list[bytes]:
    """Cut one PS unit into RTP payloads (the last one carries the marker)."""
    return [ps[i : i + size] for i in range(0, len(ps), size)] or [b""]
