"""Evidence of video alarms: a ring of recent packets per camera, JPEG snapshots and remuxed MP4 clips.

Files live under ``<data_dir>/evidence/<camera>/<YYYYMMDD>/<name>.jpg|.mp4``; the reference stored on a
``Reading`` is the path below ``evidence/``. Clips are written by remuxing the camera's own compressed packets
(no re-encoding) when MP4 takes the codec (H.264, H.265, MPEG-4 part 2; AVCC packets converted to Annex-B with
the container's parameter sets), else by transcoding that clip alone to H.264 (MS-MPEG4, MJPEG...), so every clip
plays in a browser. The store has a size cap and deletes the oldest files first (it keeps a running total and
walks its files only when that passes the cap).
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
from sharpeye.ingest.transport.video.codec import open_decoder
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket

log = logging.getLogger(__name__)

REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}/\d{8}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}\.(jpg|mp4)$")


class EvidenceError(ValueError):
    """A bad or unknown evidence reference."""


class PacketRing:
    """The last ``seconds`` of a camera's packets (by arrival time). Appended from the capture thread."""

    def __init__(self, seconds: float, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.info: StreamInfo | None = None
        self._packets: deque[VideoPacket] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def append(self, packet: VideoPacket) -> None:
        with self._lock:
            self._packets.append(packet)
            self._bytes += len(packet.data)
            horizon = packet.arrival - self.seconds
            while self._packets and (self._packets[0].arrival < horizon or self._bytes > self.max_bytes):
                self._bytes -= len(self._packets.popleft().data)

    def window(self, start: float, end: float) -> list[VideoPacket]:
        """Packets of one connection from the last key frame at or before ``start`` up to ``end``."""
        with self._lock:
            packets = list(self._packets)
        info = self.info
        generation = info.generation if info is not None else None
        packets = [p for p in packets if p.generation == generation and p.arrival <= end]
        first = None
        for i, p in enumerate(packets):
            if p.key and (p.arrival <= start or first is None):
                first = i
            if p.arrival > start and first is not None:
                break
        return [] if first is None else packets[first:]


# Codecs an MP4 takes as they are, with the raw-stream demuxer that reads their Annex-B / elementary form.
MP4_REMUX = {"h264": "h264", "hevc": "hevc", "mpeg4": "m4v"}
START = b"\x00\x00\x00\x01"


def clip_method(info: StreamInfo) -> str:
    """How a camera's clips are written: ``remux`` (its packets into an MP4 unchanged) when MP4 takes the codec,
    else ``transcode`` (that clip alone decoded and re-encoded to H.264 in MP4, so that it plays anywhere)."""
    return "remux" if info.codec in MP4_REMUX else "transcode"


def parameter_sets(codec: str, extradata: bytes | None) -> tuple[int, bytes] | None:
    """From an MP4/Matroska ``avcC``/``hvcC`` record: the NAL length size and its parameter sets in Annex-B.
    None for Annex-B or missing extradata (MPEG-TS, RTSP), whose packets carry their parameter sets in-band."""
    if codec not in ("h264", "hevc") or not extradata or extradata[0] != 1 or len(extradata) < 7:
        return None
    sets: list[bytes] = []
    data = extradata

    def take(i: int) -> int:
        n = int.from_bytes(data[i : i + 2], "big")
        sets.append(data[i + 2 : i + 2 + n])
        return i + 2 + n

    try:
        if codec == "h264":
            size = (data[4] & 3) + 1
            i = 6
            for _ in range(data[5] & 0x1F):
                i = take(i)
            count, i = data[i], i + 1
            for _ in range(count):
                i = take(i)
        else:
            size = (data[21] & 3) + 1
            i = 23
            for _ in range(data[22]):
                count, i = int.from_bytes(data[i + 1 : i + 3], "big"), i + 3
                for _ in range(count):
                    i = take(i)
    except IndexError as exc:
        raise EvidenceError(f"bad {codec} extradata ({len(data)} bytes)") from exc
    return size, b"".join(START + ps for ps in sets if ps)


def to_annexb(data: bytes, length_size: int) -> bytes:
    """Length-prefixed NAL units (AVCC/HVCC) to start-code-prefixed ones (Annex-B)."""
    out = bytearray()
    i = 0
    while i + length_size <= len(data):
        n = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        out += START + data[i : i + n]
        i += n
    return bytes(out)


def _elementary(info: StreamInfo, packets: list[VideoPacket]) -> list[bytes]:
    """Each packet in the form MP4 muxing and raw-stream probing both read: Annex-B for H.264/H.265 (key frames led
    by the container's parameter sets), and for MPEG-4 part 2 key frames led by the container's VOL header."""
    params = parameter_sets(info.codec, info.extradata)
    if params is not None:
        size, sets = params
        return [(sets if p.key else b"") + to_annexb(p.data, size) for p in packets]
    head = info.extradata or b""
    return [head + p.data if p.key and head and not p.data.startswith(head) else p.data for p in packets]


def _timestamps(info: StreamInfo, packets: list[VideoPacket]) -> list[tuple[int, int]]:
    """(pts, dts) per packet from 0, in the stream's time base. Missing timestamps come from arrival times; missing
    decode times (Matroska's first B-frames) are rebuilt from the sorted presentation times."""
    tb = float(Fraction(*info.time_base))
    start = packets[0].arrival
    pts = [p.pts if p.pts is not None else round((p.arrival - start) / tb) for p in packets]
    if all(p.dts is not None for p in packets) and all(p.pts is not None for p in packets):
        dts = [int(p.dts) for p in packets if p.dts is not None]
    else:
        order = sorted(pts)
        delay = max(0, *(o - q for o, q in zip(order, pts, strict=True)))
        dts = [o - delay for o in order]
    base = min(min(pts), min(dts))
    out: list[tuple[int, int]] = []
    last = None
    for p, d in zip(pts, dts, strict=True):
        d -= base
        if last is not None and d <= last:
            d = last + 1
        last = d
        out.append((max(p - base, d), d))
    return out


# NAL unit types of the parameter sets: H.264 SPS, PPS; H.265 VPS, SPS, PPS.
PARAMETER_SETS = {"h264": (7, 8), "hevc": (32, 33, 34)}
VOP = b"\x00\x00\x01\xb6"  # MPEG-4 part 2: a picture begins; the headers (VOS, VOL) come before it
# Picture size and format per (codec, stream headers), learnt from the first clip's probe: probing decodes the
# clip's first pictures (12 ms for 768x576 H.264, nearly all of a clip's cost, paid by the hub for every alarm);
# a later clip with the same headers probes the headers alone (0.2 ms) and takes the size from here.
_KNOWN: dict[tuple[str, bytes], tuple[int, int, str | None]] = {}
_KNOWN_LOCK = threading.Lock()
KNOWN_MAX = 1024


def stream_headers(codec: str, key_payload: bytes) -> bytes | None:
    """The stream headers a key frame in MP4-ready form carries: H.264/H.265 parameter sets in Annex-B, or the
    MPEG-4 part 2 headers before its first picture. None when it has none."""
    if codec == "mpeg4":
        end = key_payload.find(VOP)
        return key_payload[:end] if end > 0 else None
    types = PARAMETER_SETS.get(codec)
    if types is None:
        return None
    out: list[bytes] = []
    for nal in key_payload.split(b"\x00\x00\x01"):
        nal = nal.rstrip(b"\x00")  # a 4-byte start code leaves its zero on the unit before
        if nal and ((nal[0] & 0x1F) if codec == "h264" else (nal[0] >> 1) & 0x3F) in types:
            out.append(START + nal)
    return b"".join(out) or None


def _remux(out: Any, info: StreamInfo, packets: list[VideoPacket]) -> None:
    data = _elementary(info, packets)
    fmt = MP4_REMUX[info.codec]
    headers = stream_headers(info.codec, data[0]) if packets[0].key else None
    with _KNOWN_LOCK:
        known = _KNOWN.get((info.codec, headers)) if headers else None
    # A template stream read from the clip's own first packets gives the muxer the codec parameters without opening
    # an encoder (an encoder would replace the camera's extradata with its own); with headers seen before, from
    # the headers alone, the picture size as learnt.
    probe: Any = av.open(io.BytesIO(headers if known and headers else b"".join(data[:8])), format=fmt)
    try:
        if not probe.streams.video:
            raise EvidenceError(f"no {info.codec} stream in the clip's first packets")
        template = probe.streams.video[0]
        stream = out.add_stream_from_template(template)
        if known is not None:
            stream.codec_context.width, stream.codec_context.height = known[0], known[1]
            if known[2] is not None:
                stream.codec_context.pix_fmt = known[2]
        elif headers and template.codec_context.width > 0:
            cc = template.codec_context
            with _KNOWN_LOCK:
                if len(_KNOWN) >= KNOWN_MAX:
                    _KNOWN.clear()
                _KNOWN[(info.codec, headers)] = (cc.width, cc.height, cc.pix_fmt)
    finally:
        probe.close()
    tb = Fraction(*info.time_base)
    stream.time_base = tb
    times = _timestamps(info, packets)
    for i, (p, payload, (pts, dts)) in enumerate(zip(packets, data, times, strict=True)):
        pkt = av.Packet(payload)
        pkt.pts, pkt.dts, pkt.time_base, pkt.stream = pts, dts, tb, stream
        # Each packet's duration, the last one's as the one before: the muxer then needs no frame rate to end
        # the clip (it left the last picture out without one).
        if len(times) > 1:
            pkt.duration = max(1, times[i + 1][1] - dts if i + 1 < len(times) else dts - times[i - 1][1])
        pkt.is_keyframe = p.key
        out.mux(pkt)


def _transcode(out: Any, info: StreamInfo, packets: list[VideoPacket]) -> None:
    decoder = open_decoder(info, threads=1)
    fps = round(info.fps or 10)
    stream = out.add_stream("libx264", rate=fps)
    # 4:2:0 needs even sizes; an odd camera picture loses its last row or column.
    stream.width, stream.height = max(2, info.width // 2 * 2), max(2, info.height // 2 * 2)
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
    tb = Fraction(*info.time_base)
    stream.codec_context.time_base = tb
    scaler: Any = av.video.reformatter.VideoReformatter()
    frames = 0
    last = -1
    for p, (pts, dts) in zip(packets, _timestamps(info, packets), strict=True):
        pkt = av.Packet(p.data)
        pkt.pts, pkt.dts, pkt.time_base = pts, dts, tb
        try:
            decoded = decoder.decode(pkt)
        except av.FFmpegError:
            continue
        for frame in decoded:
            out_frame = scaler.reformat(frame, width=stream.width, height=stream.height, format="yuv420p")
            t = frame.pts if frame.pts is not None else last + 1
            out_frame.pts = t if t > last else last + 1
            last = out_frame.pts
            out_frame.time_base = tb
            out.mux(stream.encode(out_frame))
            frames += 1
    if frames == 0:
        raise EvidenceError(f"no picture of {info.codec} decoded for the clip")
    out.mux(stream.encode(None))


def write_clip(path: Path, info: StreamInfo, packets: list[VideoPacket]) -> str:
    """Write ``packets`` as an MP4 at ``path``: remuxed unchanged when MP4 takes the codec, else that clip alone
    transcoded to H.264 (see ``clip_method``). Returns the method used."""
    if not packets:
        raise EvidenceError("no packets to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    method = clip_method(info)
    out: Any = av.open(str(tmp), "w", format="mp4")
    try:
        if method == "remux":
            _remux(out, info, packets)
        else:
            _transcode(out, info, packets)
    except BaseException:
        out.close()
        tmp.unlink(missing_ok=True)
        raise
    out.close()
    tmp.replace(path)
    return method


class EvidenceStore:
    """Writes and serves evidence files under ``root`` with a total size cap."""

    def __init__(self, root: Path, cap_bytes: int = 2 * 1024**3) -> None:
        self.root = root
        self.cap_bytes = cap_bytes
        self.deleted = 0
        root.mkdir(parents=True, exist_ok=True)
        self._root_resolved = root.resolve()
        self._lock = threading.Lock()
        # Bytes in the store as counted at the last walk plus those written since; None until the first walk. The
        # store is walked (every file stat'ed) only when this passes the cap: walking it after every write cost
        # the hub more CPU than the clips themselves once the store held a few thousand files. Files deleted by
        # anything else only make it high, which brings the next walk sooner.
        self._usage: int | None = None
        self.walks = 0

    def path(self, ref: str) -> Path:
        """The file of a reference; raises ``EvidenceError`` for anything outside the store or missing."""
        if not isinstance(ref, str) or not REF.match(ref) or ".." in ref:
            raise EvidenceError(f"bad evidence reference {ref!r}")
        path = (self.root / ref).resolve()
        if not path.is_relative_to(self._root_resolved):
            raise EvidenceError(f"evidence reference {ref!r} leaves the store")
        if not path.is_file():
            raise EvidenceError(f"no evidence {ref!r}")
        return path

    def target(self, ref: str) -> Path:
        if not REF.match(ref):
            raise EvidenceError(f"bad evidence reference {ref!r}")
        return self.root / ref

    def write_snapshot(self, ref: str, jpeg: bytes) -> Path:
        path = self.target(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(jpeg)
        tmp.replace(path)
        self._written(len(jpeg))
        return path

    def write_clip(self, ref: str, info: StreamInfo, packets: list[VideoPacket]) -> Path:
        path = self.target(ref)
        write_clip(path, info, packets)
        self._written(path.stat().st_size)
        return path

    def _written(self, size: int) -> None:
        with self._lock:
            if self._usage is not None:
                self._usage += size
                if self._usage <= self.cap_bytes:
                    return
        self.enforce_cap()

    def usage(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _files(self) -> list[tuple[float, int, str]]:
        files: list[tuple[float, int, str]] = []
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                full = os.path.join(dirpath, name)  # noqa: PTH118
                try:
                    st = os.stat(full)  # noqa: PTH116
                except FileNotFoundError:
                    continue
                files.append((st.st_mtime, st.st_size, full))
        return files

    def enforce_cap(self) -> None:
        """Delete the oldest files until the store fits its cap."""
        with self._lock:
            self.walks += 1
            files = self._files()
            total = sum(size for _, size, _ in files)
            self._usage = total
            if total <= self.cap_bytes:
                return
            for _mtime, size, full in sorted(files):
                if total <= self.cap_bytes:
                    break
                try:
                    os.remove(full)  # noqa: PTH107
                except FileNotFoundError:
                    continue
                total -= size
                self._usage = total
                self.deleted += 1
                log.info("evidence cap: deleted %s", full)


def snapshot_jpeg(info: StreamInfo, packets: list[VideoPacket], quality: int = 85) -> bytes | None:
    """The newest picture in ``packets`` as a JPEG: decoded from the last key frame on (for evidence asked for by
    another device's alarm, e.g. a fence zone's linked camera). None when there is no key frame to start from."""
    start = next((i for i in range(len(packets) - 1, -1, -1) if packets[i].key), None)
    if start is None:
        return None
    try:
        codec = open_decoder(info)
    except (av.FFmpegError, ValueError):
        return None
    frame: Any = None
    for p in packets[start:]:
        packet = av.Packet(p.data)
        packet.pts, packet.dts = p.pts, p.dts
        try:
            for decoded in codec.decode(packet):
                frame = decoded
        except av.error.FFmpegError:
            continue
    if frame is None:
        return None
    ok, jpeg = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return bytes(jpeg) if ok else None
