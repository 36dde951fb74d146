"""Evidence of video alarms: a ring of recent packets per camera, JPEG snapshots and remuxed MP4 clips.

Files live under ``<data_dir>/evidence/<camera>/<YYYYMMDD>/<name>.jpg|.mp4``; the reference stored on a
``Reading`` is the path below ``evidence/``. Clips are written by remuxing the camera's own compressed packets
(no re-encoding). The store has a size cap and deletes the oldest files first.
"""

from __future__ import annotations

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


def write_clip(path: Path, info: StreamInfo, packets: list[VideoPacket]) -> int:
    """Remux ``packets`` into an MP4 at ``path`` without decoding them. Returns the number of packets written."""
    if not packets:
        raise EvidenceError("no packets to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tb = Fraction(*info.time_base)
    base_pts = next((p.pts for p in packets if p.pts is not None), None)
    out: Any = av.open(str(tmp), "w", format="mp4")
    written = 0
    try:
        stream = out.add_stream(info.codec, rate=round(info.fps or 25))
        stream.width = info.width
        stream.height = info.height
        stream.time_base = tb
        if info.extradata:
            stream.codec_context.extradata = info.extradata
        last_dts = -1
        start_arrival = packets[0].arrival
        for p in packets:
            if p.pts is not None and base_pts is not None:
                pts = p.pts - base_pts
            else:
                pts = round((p.arrival - start_arrival) / float(tb))
            dts = (p.dts - base_pts) if (p.dts is not None and base_pts is not None) else pts
            if dts <= last_dts:
                dts = last_dts + 1
            pts = max(pts, dts)
            last_dts = dts
            pkt = av.Packet(p.data)
            pkt.pts = pts
            pkt.dts = dts
            pkt.time_base = tb
            pkt.stream = stream
            if p.key:
                pkt.is_keyframe = True
            out.mux(pkt)
            written += 1
    finally:
        out.close()
    tmp.replace(path)
    return written


class EvidenceStore:
    """Writes and serves evidence files under ``root`` with a total size cap."""

    def __init__(self, root: Path, cap_bytes: int = 2 * 1024**3) -> None:
        self.root = root
        self.cap_bytes = cap_bytes
        self.deleted = 0
        root.mkdir(parents=True, exist_ok=True)
        self._root_resolved = root.resolve()
        self._lock = threading.Lock()

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
        self.enforce_cap()
        return path

    def write_clip(self, ref: str, info: StreamInfo, packets: list[VideoPacket]) -> Path:
        path = self.target(ref)
        write_clip(path, info, packets)
        self.enforce_cap()
        return path

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
            files = self._files()
            total = sum(size for _, size, _ in files)
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
                self.deleted += 1
                log.info("evidence cap: deleted %s", full)


def snapshot_jpeg(info: StreamInfo, packets: list[VideoPacket], quality: int = 85) -> bytes | None:
    """The newest picture in ``packets`` as a JPEG: decoded from the last key frame on (for evidence asked for by
    another device's alarm, e.g. a fence zone's linked camera). None when there is no key frame to start from."""
    start = next((i for i in range(len(packets) - 1, -1, -1) if packets[i].key), None)
    if start is None:
        return None
    codec: Any = av.CodecContext.create(info.codec, "r")
    if info.extradata:
        codec.extradata = info.extradata
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
