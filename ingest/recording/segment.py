"""MP4 segments written packet by packet from a camera's compressed stream, and one MP4 cut from several.

``SegmentWriter`` takes the packets of one connection (starting with a key frame) and remuxes them into an MP4
without re-encoding: H.264/H.265 packets in AVCC/HVCC form (MP4 and Matroska sources) are converted to Annex-B with
the container's parameter sets ahead of each key frame, as the evidence clips are (``camera/evidence.py``); the
MP4 muxer builds its ``avcC``/``hvcC`` from them. ``remux_range`` copies the packets of consecutive segments from
the key frame at or before a start time to an end time into one MP4 (``+faststart``), again without decoding.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from sharpeye.ingest.camera.evidence import MP4_REMUX, parameter_sets, to_annexb
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket

log = logging.getLogger(__name__)

PROBE_PACKETS = 8  # packets read by the raw-stream demuxer to learn the codec parameters


class RecordingError(ValueError):
    """A stream that cannot be recorded, a broken segment, or a range with nothing recorded."""


def recordable(info: StreamInfo) -> bool:
    """MP4 takes the codec as it is (no re-encoding)."""
    return info.codec in MP4_REMUX


@dataclass(frozen=True)
class WrittenSegment:
    """A closed segment: where, when (seconds since the epoch) and how big."""

    path: Path
    start: float
    end: float
    bytes: int
    packets: int


class SegmentWriter:
    """One MP4 being written. ``add`` packets of one connection (the first a key frame), then ``close``.

    The output opens once ``PROBE_PACKETS`` packets are buffered (or at ``close``): the raw-stream demuxer reads
    the codec parameters from them, so no encoder is ever opened."""

    def __init__(self, path: Path, info: StreamInfo, start_wall: float) -> None:
        if not recordable(info):
            raise RecordingError(
                f"codec {info.codec} is not recorded: MP4 remux takes {', '.join(sorted(MP4_REMUX))} only"
            )
        self.path = path
        self.info = info
        self.start_wall = start_wall
        self.tb = Fraction(*info.time_base)
        params = parameter_sets(info.codec, info.extradata)
        self._length_size = params[0] if params else 0
        self._sets = params[1] if params else b""
        self._head = b"" if params else (info.extradata or b"") if info.codec == "mpeg4" else b""
        self._pending: list[tuple[bytes, bool, int, int]] = []
        self._out: Any = None
        self._stream: Any = None
        self._base: int | None = None
        self._last_dts: int | None = None
        self._max_end = 0
        self._step = 0
        self._prev_pts: int | None = None
        self._first_pts: int | None = None  # the key frame that starts the segment: its presentation is start_wall
        self._t0_arrival: float | None = None
        self.packets = 0
        self.bytes_in = 0
        path.parent.mkdir(parents=True, exist_ok=True)

    def _payload(self, p: VideoPacket) -> bytes:
        if self._length_size:
            return (self._sets if p.key else b"") + to_annexb(p.data, self._length_size)
        if self._head and p.key and not p.data.startswith(self._head):
            return self._head + p.data
        return p.data

    def _times(self, p: VideoPacket) -> tuple[int, int]:
        """(pts, dts) from the segment's first packet on, decode times strictly growing; packets without
        timestamps are timed by arrival."""
        if self._t0_arrival is None:
            self._t0_arrival = p.arrival
        if p.pts is None:
            pts = round((p.arrival - self._t0_arrival) / self.tb)
            dts = pts
            if self._base is None:
                self._base = 0
        else:
            pts = p.pts
            dts = p.dts if p.dts is not None else p.pts
            if self._base is None:
                self._base = min(pts, dts)
            pts -= self._base
            dts -= self._base
        if self._last_dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1
        self._last_dts = dts
        return max(pts, dts), dts

    def add(self, p: VideoPacket) -> None:
        if self.packets == 0 and not p.key:
            raise RecordingError("a segment must start with a key frame")
        pts, dts = self._times(p)
        if self._prev_pts is not None and pts > self._prev_pts:
            step = pts - self._prev_pts
            self._step = step if self._step == 0 else min(self._step, step)
        self._prev_pts = pts
        if self._first_pts is None:
            self._first_pts = pts
        self._max_end = max(self._max_end, pts)
        self.packets += 1
        self.bytes_in += len(p.data)
        item = (self._payload(p), p.key, pts, dts)
        if self._out is None:
            self._pending.append(item)
            if len(self._pending) >= PROBE_PACKETS:
                self._open()
        else:
            self._mux(*item)

    def _open(self) -> None:
        probe: Any = av.open(io.BytesIO(b"".join(d for d, *_ in self._pending)), format=MP4_REMUX[self.info.codec])
        try:
            if not probe.streams.video:
                raise RecordingError(f"no {self.info.codec} stream in the segment's first packets")
            self._out = av.open(str(self.path), "w", format="mp4")
            self._stream = self._out.add_stream_from_template(probe.streams.video[0])
        finally:
            probe.close()
        self._stream.time_base = self.tb
        pending, self._pending = self._pending, []
        for item in pending:
            self._mux(*item)

    def _mux(self, data: bytes, key: bool, pts: int, dts: int) -> None:
        pkt = av.Packet(data)
        pkt.pts, pkt.dts, pkt.time_base, pkt.stream = pts, dts, self.tb, self._stream
        pkt.is_keyframe = key
        self._out.mux(pkt)

    @property
    def duration(self) -> float:
        """Seconds covered so far (the last picture lasts one frame interval)."""
        return float((self._max_end - (self._first_pts or 0) + self._step) * self.tb)

    def close(self) -> WrittenSegment:
        """Finish the file; raises ``RecordingError`` when nothing could be written (the file is removed)."""
        try:
            if self._out is None and self._pending:
                self._open()
            if self._out is None:
                raise RecordingError("no packets in the segment")
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            self.discard()
            raise RecordingError(f"segment {self.path.name}: {exc}") from exc
        except RecordingError:
            self.discard()
            raise
        self._out = None
        size = self.path.stat().st_size
        return WrittenSegment(self.path, self.start_wall, self.start_wall + self.duration, size, self.packets)

    def discard(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError):
                log.debug("closing a discarded segment failed", exc_info=True)
            self._out = None
        self.path.unlink(missing_ok=True)


def remux_range(segments: list[tuple[Path, float]], start: float, end: float, out_path: Path) -> tuple[float, float]:
    """Copy the packets of ``segments`` (path, start time; in time order) from the key frame at or before ``start``
    up to ``end`` into one MP4 at ``out_path``, timestamps continuous across segments (gaps kept). Returns the
    (start, end) wall times actually covered. Raises ``RecordingError`` when nothing falls in the range."""
    if not segments:
        raise RecordingError("no recording in the range")
    out: Any = av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"})
    stream: Any = None
    otb: Fraction | None = None  # the output's time base as first read (the muxer may change the stream's own)
    first_wall: float | None = None
    last_dts: int | None = None
    covered_end = start
    written = 0
    try:
        for path, seg_start in segments:
            try:
                src: Any = av.open(str(path))
            except (av.FFmpegError, OSError) as exc:
                log.warning("recording %s unreadable, skipped: %s", path, exc)
                continue
            try:
                if not src.streams.video:
                    continue
                ins = src.streams.video[0]
                if stream is None:
                    stream = out.add_stream_from_template(ins)
                    stream.time_base = ins.time_base
                    otb = Fraction(ins.time_base)
                assert otb is not None
                tb = ins.time_base
                packets = [p for p in src.demux(ins) if p.size and p.dts is not None]
                if not packets:
                    continue
                origin = min(int(p.dts) for p in packets)
                # Cut: from the last key frame at or before ``start`` (in this segment) up to ``end``.
                first = 0
                for i, p in enumerate(packets):
                    t = seg_start + float((int(p.pts if p.pts is not None else p.dts) - origin) * tb)
                    if p.is_keyframe and t <= start:
                        first = i
                keep = []
                for p in packets[first:]:
                    t = seg_start + float((int(p.pts if p.pts is not None else p.dts) - origin) * tb)
                    if t > end:
                        break
                    keep.append((p, t))
                if not keep:
                    continue
                if first_wall is None:
                    if not keep[0][0].is_keyframe:
                        continue
                    first_wall = keep[0][1]
                shift = round((seg_start - first_wall) / float(otb))
                scale = float(tb) / float(otb)
                for p, t in keep:
                    dts = round((int(p.dts) - origin) * scale) + shift
                    pts = round((int(p.pts if p.pts is not None else p.dts) - origin) * scale) + shift
                    if last_dts is not None and dts <= last_dts:
                        dts = last_dts + 1
                    last_dts = dts
                    p.dts, p.pts = dts, max(pts, dts)
                    p.stream = stream
                    p.time_base = otb
                    out.mux(p)
                    written += 1
                    covered_end = max(covered_end, t)
            finally:
                src.close()
        if written == 0 or first_wall is None:
            raise RecordingError("no recorded picture in the range")
    except BaseException:
        out.close()
        out_path.unlink(missing_ok=True)
        raise
    out.close()
    return first_wall, covered_end
