"""``RecordingStore``: the segments of every recording camera, indexed by time, with retention.

Files live under ``<root>/<camera>/<YYYYMMDD>/<start_ms>-<end_ms>.mp4`` (UTC day, milliseconds since the epoch),
so the index is rebuilt from the file names alone at start; a segment being written is ``<start_ms>.mp4.part``
(an MP4's index is written when it closes: a part left by a crash cannot be played and is deleted at start).
Retention deletes, oldest first, segments older than the camera's ``keep_days`` and then as many as needed to fit
its ``max_mb``.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sharpeye.ingest.recording.segment import RecordingError, WrittenSegment, remux_range

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{10,14})-(\d{10,14})\.mp4$")
_DAY = re.compile(r"^\d{8}$")
_CAMERA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True, order=True)
class Segment:
    """One recorded segment: seconds since the epoch, size, and its name below the camera (``YYYYMMDD/file``)."""

    start: float
    end: float
    bytes: int
    name: str

    def overlaps(self, start: float, end: float) -> bool:
        return self.start < end and self.end > start


class RecordingStore:
    """Segments by camera, kept sorted by start; safe to use from the recorder threads and the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[str, list[Segment]] = {}
        self._usage: dict[str, int] = {}
        self._lock = threading.Lock()
        self.deleted = 0  # segments deleted by retention, all cameras
        self.deleted_by_camera: dict[str, int] = {}
        self.partials_removed = 0

    def _dir(self, camera_id: str) -> Path:
        if not _CAMERA.match(camera_id):
            raise ValueError(f"bad camera id {camera_id!r}")
        return self.root / camera_id

    def load(self, camera_id: str) -> int:
        """Index the camera's segments from disk; deletes parts left by a crash. Returns the segments found."""
        found: list[Segment] = []
        base = self._dir(camera_id)
        if base.is_dir():
            for day in sorted(base.iterdir()):
                if not day.is_dir() or not _DAY.match(day.name):
                    continue
                for f in day.iterdir():
                    if f.name.endswith(".part"):
                        log.warning("recording %s: deleting %s, left unfinished (the hub stopped while writing)",
                                    camera_id, f)  # fmt: skip
                        f.unlink(missing_ok=True)
                        self.partials_removed += 1
                        continue
                    m = _NAME.match(f.name)
                    if m is None:
                        continue
                    found.append(Segment(int(m[1]) / 1000, int(m[2]) / 1000, f.stat().st_size, f"{day.name}/{f.name}"))
        found.sort()
        with self._lock:
            self._index[camera_id] = found
            self._usage[camera_id] = sum(s.bytes for s in found)
        return len(found)

    def part_path(self, camera_id: str, start: float) -> Path:
        day = datetime.fromtimestamp(start, UTC).strftime("%Y%m%d")
        return self._dir(camera_id) / day / f"{round(start * 1000)}.mp4.part"

    def add(self, camera_id: str, written: WrittenSegment) -> Segment:
        """Give a closed segment its final name and index it."""
        start_ms, end_ms = round(written.start * 1000), max(round(written.end * 1000), round(written.start * 1000) + 1)
        final = written.path.with_name(f"{start_ms}-{end_ms}.mp4")
        written.path.replace(final)
        seg = Segment(start_ms / 1000, end_ms / 1000, written.bytes, f"{final.parent.name}/{final.name}")
        with self._lock:
            segs = self._index.setdefault(camera_id, [])
            bisect.insort(segs, seg)
            self._usage[camera_id] = self._usage.get(camera_id, 0) + seg.bytes
        return seg

    def cameras(self) -> list[str]:
        with self._lock:
            return list(self._index)

    def segments(self, camera_id: str, start: float, end: float) -> list[Segment]:
        """Segments overlapping ``[start, end)``, in time order."""
        with self._lock:
            segs = self._index.get(camera_id, [])
            i = max(0, bisect.bisect_left(segs, Segment(start, 0, 0, "")) - 1)
            return [s for s in segs[i:] if s.start < end and s.overlaps(start, end)]

    def from_moment(self, camera_id: str, t: float, limit: int = 20) -> list[Segment]:
        """The segment holding ``t`` (or the first after it) and the ones following, for playing on."""
        with self._lock:
            segs = self._index.get(camera_id, [])
            i = bisect.bisect_right(segs, Segment(t, float("inf"), 0, "")) - 1
            if i < 0 or segs[i].end <= t:
                i += 1
            return segs[i : i + limit]

    def path(self, camera_id: str, name: str) -> Path:
        """The file of an indexed segment; ``KeyError`` for anything not in the index (no path escapes)."""
        with self._lock:
            if not any(s.name == name for s in self._index.get(camera_id, [])):
                raise KeyError(f"no segment {name!r} of camera {camera_id!r}")
        return self._dir(camera_id) / name

    def usage(self, camera_id: str) -> int:
        with self._lock:
            return self._usage.get(camera_id, 0)

    def enforce(self, camera_id: str, keep_days: float, max_bytes: int, now: float | None = None) -> int:
        """Delete the camera's segments older than ``keep_days``, then the oldest until they fit ``max_bytes``.
        Returns how many were deleted."""
        now = time.time() if now is None else now
        horizon = now - keep_days * 86400
        doomed: list[Segment] = []
        with self._lock:
            segs = self._index.get(camera_id, [])
            usage = self._usage.get(camera_id, 0)
            keep_from = 0
            while keep_from < len(segs) and (segs[keep_from].end < horizon or usage > max_bytes):
                usage -= segs[keep_from].bytes
                doomed.append(segs[keep_from])
                keep_from += 1
            if doomed:
                self._index[camera_id] = segs[keep_from:]
                self._usage[camera_id] = usage
        base = self._dir(camera_id)
        for seg in doomed:
            path = base / seg.name
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("recording %s: retention could not delete %s: %s", camera_id, path, exc)
            try:
                if not any(path.parent.iterdir()):
                    path.parent.rmdir()
            except OSError:
                pass
        if doomed:
            with self._lock:
                self.deleted += len(doomed)
                self.deleted_by_camera[camera_id] = self.deleted_by_camera.get(camera_id, 0) + len(doomed)
            log.info("recording %s: retention deleted %d segments", camera_id, len(doomed))
        return len(doomed)


def export_range(store: RecordingStore, camera_id: str, start: float, end: float) -> tuple[Path, float, float]:
    """One MP4 of ``[start, end)`` remuxed from the camera's segments into ``<root>/.exports/`` (the caller deletes
    it once sent). Raises ``RecordingError`` when nothing is recorded in the range."""
    segs = store.segments(camera_id, start, end)
    if not segs:
        raise RecordingError(f"camera {camera_id} has no recording between {start:.0f} and {end:.0f}")
    directory = store.root / ".exports"
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{camera_id}-{uuid.uuid4().hex}.mp4"
    base = store.root / camera_id
    first, last = remux_range([(base / s.name, s.start) for s in segs], start, end, out)
    return out, first, last
