"""Video analytics of one camera on small frames: background model, blobs, tracker, zones, tripwires, tamper.

``Analyzer.process(frame, t, full)`` takes a small BGR frame and its stream time in seconds (and the full-size
frame when an object detector is needed) and returns the ``VideoEvent``s it raises. It is pure CPU work with no
I/O, run inside a worker process.

Detection is Frigate-style: motion first (MOG2 on the small frame, every analysed frame), then, where a zone or
line names object classes, the object detector on the regions of motion of the full-size frame: the padded boxes
of the moving tracks that need a look, merged where they touch, largest first, each seen at a small size
(``detector.region_size`` for one object: the detector's cost is about proportional to the pixels it sees). Not
every track is looked at on every frame: a new track once the rules would count it (``RULE_HITS`` sightings and
``detection.min_travel``; the look runs before the rules in that frame), one whose last votes disagree at the next
pass, at most ``detector.fps`` passes a second; a track whose
last two votes agree is looked at again every ``detector.recheck_s`` (less often when steady, settled or sure of its
class, see ``_due``). A blob that splits off a track in alarm continues that track's stay in its intrusion zones
(``_continue_stay``). Each detection votes for the track it falls
in (tracks inside a region looked at for another get a vote too); a track's class is the rolling vote of its last
``detector.votes`` looks, so one miss (two people merged into one blob, a person cut by the frame edge) does not
settle it. While the worker is behind (the frame older than ``detector.max_lag_s``) passes are skipped and
counted, so motion analysis keeps up and health can say the detector does not.

The background model is MOG2 on the analysed frame shrunk by ``detection.motion_scale`` (2: a quarter of the
pixels; its foreground is scaled back up with nearest neighbours before the morphology, so blobs and tracks keep the
analysed frame's resolution), on tiles (``TILE_ROWS`` x ``TILE_COLS``, one model each; MOG2 is per pixel, so the
tiles change nothing but what is updated): a tile is fed only when its picture changed since it was last fed
(``GATE_PIXELS`` pixels or more whose grey difference exceeds ``GATE_LEVEL``) and at least once in ``REFRESH_FRAMES``
analysed frames (the tiles' refreshes staggered), with the learning rate of the frames it skipped; a tile not fed
keeps its last foreground. MOG2 was two thirds of the motion stage's CPU; on the busy real clip (vtest.avi, people
walking all over the picture) about 40 % of the tiles are fed per frame, on a still scene with one person crossing
about a third, a tenth of them refreshes (``bench/video_costs.py``).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
from sharpeye.ingest.camera import geometry
from sharpeye.ingest.camera.config import CameraConfig, TripwireConfig, ZoneConfig
from sharpeye.ingest.camera.detector import LATENCY_BUCKETS, Detection, DetectorError, ObjectDetector
from sharpeye.ingest.camera.event import VideoEvent
from sharpeye.ingest.camera.model import INSTALL_HINT
from sharpeye.ingest.camera.tamper import TamperDetector

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # x, y, w, h normalized
KERNEL_3 = np.ones((3, 3), np.uint8)
KERNEL_7 = np.ones((7, 7), np.uint8)
MOG2_MIXTURES = 3
# The background model's tiles and their change gate (see the module docstring).
TILE_ROWS, TILE_COLS = 6, 8
GATE_LEVEL = 10  # grey difference (0..255) from the tile's last fed picture that counts as a change
GATE_PIXELS = 9  # changed pixels (at the background model's size) that make a tile fed
REFRESH_FRAMES = 10  # a tile is fed at least once in this many analysed frames, staggered (learning, absorbing)
WARM_FRAMES = 10  # every tile is fed on the first frames after a reset
# Upper bounds of the regions-per-pass histogram.
REGION_BUCKETS = (1, 2, 3, 4, 6, 8, 16)
MIN_REGION_PX = 48  # a region's side in full-frame pixels is at least this
CONFIDENT = 0.6  # a first vote this sure waits the full recheck time
# A track whose last two votes agree and whose box kept its shape since the last look (area and aspect within
# STEADY_SHAPE of it: no merge, split or occlusion), or whose alarms are raised, waits STEADY_WAIT recheck times.
STEADY_WAIT = 3.0
STEADY_SHAPE = 1.6
# A track whose last SURE_VOTES votes name one class, each at CONFIDENT or more, is looked at again only after
# SURE_WAIT recheck times, whatever its box does (a walking person's box changes shape all the time): the rolling
# vote's cap once it is confident.
SURE_VOTES = 3
SURE_WAIT = 5.0
SPLIT_PAD = 0.25  # a blob born this close to a track in alarm continues its stay (``Analyzer._continue_stay``)
RULE_HITS = 3  # a track counts for the rules once seen this many times (and moved detection.min_travel)
LOOK_WHEN_COUNTED = True  # the detector's first look at a track waits until then (else: from its second sighting)


class FullPicture(Protocol):
    """The full-size picture, converted to BGR only where the detector asks (``worker.Picture``)."""

    shape: tuple[int, int, int]

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray: ...


Full = np.ndarray | Callable[[], np.ndarray] | FullPicture


@dataclass
class DetectorStats:
    """The object detector's work for one camera, cumulative (the worker sends it with the camera's stats, msgpack;
    a dataclass so that ``GET /api/cameras`` shows it as JSON as it is)."""

    due: int = 0  # analysed frames on which some track needed a look
    passes: int = 0  # of those, passes run
    skipped: int = 0  # and passes skipped because the worker was behind (frame older than detector.max_lag_s)
    inferences: int = 0  # detector runs (one per region)
    cpu_s: float = 0.0  # their CPU time
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))  # per bucket
    latency_sum: float = 0.0  # wall seconds of all inferences
    regions: list[int] = field(default_factory=lambda: [0] * (len(REGION_BUCKETS) + 1))  # per pass
    regions_sum: int = 0
    pixels: int = 0  # input pixels seen
    lag_s: float = 0.0  # age of the newest analysed frame when it was analysed
    precision: str = ""  # the model's: int8 or float32


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


@dataclass
class Track:
    """One moving object followed across frames."""

    id: int
    box: Box
    first_t: float
    last_t: float
    origin: geometry.Point
    hits: int = 1
    travel: float = 0.0
    votes: deque[tuple[str | None, float]] = field(default_factory=lambda: deque(maxlen=5))
    detected_t: float | None = None  # when the detector last looked at this track
    looked_box: Box | None = None  # and the track's box then
    prev_foot: geometry.Point | None = None
    zone_since: dict[str, float] = field(default_factory=dict)
    zone_out_since: dict[str, float] = field(default_factory=dict)
    zone_episode: dict[str, str] = field(default_factory=dict)
    zone_last_emit: dict[str, float] = field(default_factory=dict)
    loiter_last_emit: dict[str, float] = field(default_factory=dict)
    line_side: dict[str, float] = field(default_factory=dict)

    @property
    def foot(self) -> geometry.Point:
        x, y, w, h = self.box
        return (x + w / 2, y + h)

    @property
    def centre(self) -> geometry.Point:
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)


def _merge_boxes(boxes: list[list[int]], gap: int) -> list[list[int]]:
    """Merge pixel boxes [x0, y0, x1, y1] that touch after growing by ``gap`` (a head and its body)."""
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                if b[0] - gap <= o[2] and o[0] - gap <= b[2] and b[1] - gap <= o[3] and o[1] - gap <= b[3]:
                    o[0], o[1], o[2], o[3] = min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])
                    merged = True
                    break
            else:
                out.append(list(b))
        boxes = out
    return boxes


class Analyzer:
    """Analytics state of one camera."""

    def __init__(self, config: CameraConfig, detector: ObjectDetector | None = None, strict: bool = True) -> None:
        self.config = config
        self.needs_detector = config.needs_detector
        if self.needs_detector and detector is None and strict:
            raise DetectorError(f"camera {config.id}: a zone or line names object classes; {INSTALL_HINT}")
        self.detector = detector if self.needs_detector else None
        self._last_detect: float | None = None
        self.detector_stats = DetectorStats(precision=self.detector.precision if self.detector is not None else "")
        self.tamper = TamperDetector(config.tamper)
        e = geometry.EDGE
        self._zone_bounds = {
            z.id: (
                min(x for x, _ in z.polygon) - e,
                min(y for _, y in z.polygon) - e,
                max(x for x, _ in z.polygon) + e,
                max(y for _, y in z.polygon) + e,
            )
            for z in config.zones
        }
        self._shape: tuple[int, int] | None = None
        self._mogs: list[cv2.BackgroundSubtractorMOG2] = []
        self._tiles: list[tuple[int, int, int, int]] = []  # y0, y1, x0, x1
        self._corners: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._skipped = np.zeros(0, np.int64)  # per tile, analysed frames since it was last fed
        self._phase = np.zeros(0, np.int64)  # per tile, its refresh frames' offset
        self._bg_frames = 0  # frames since the background model was reset
        self._fed: np.ndarray | None = None  # each tile's last fed picture
        self._fg: np.ndarray | None = None  # each tile's last foreground
        self.tiles_fed = 0  # tile updates, all frames (a tile skipped costs nothing but the gate)
        self.tiles_seen = 0
        self._mask: np.ndarray | None = None
        self._tracks: dict[int, Track] = {}
        self._next_id = 1
        self._last_t: float | None = None
        self._tamper_episode: str | None = None
        self._tamper_last_emit = 0.0
        self._tamper_count = 0
        self._tamper_repeat = 0
        self._tamper_checked: float | None = None
        self.resets = 0
        self.frames = 0

    def _inside(self, zone: ZoneConfig, p: geometry.Point) -> bool:
        """``geometry.contains`` of the zone, after a test against its bounding box (most points are far off)."""
        x0, y0, x1, y1 = self._zone_bounds[zone.id]
        if not (x0 <= p[0] <= x1 and y0 <= p[1] <= y1):
            return False
        return geometry.contains(zone.polygon, p)

    @property
    def detector_passes(self) -> int:
        return self.detector_stats.passes

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks.values())

    def _setup(self, shape: tuple[int, int]) -> None:
        self._shape = shape
        h, w = self._motion_shape(shape)
        ys = [round(i * h / TILE_ROWS) for i in range(TILE_ROWS + 1)]
        xs = [round(i * w / TILE_COLS) for i in range(TILE_COLS + 1)]
        self._tiles = [
            (ys[r], ys[r + 1], xs[c], xs[c + 1])
            for r in range(TILE_ROWS)
            for c in range(TILE_COLS)
            if ys[r + 1] > ys[r] and xs[c + 1] > xs[c]
        ]
        y0, y1, x0, x1 = (np.array([t[k] for t in self._tiles], np.intp) for k in range(4))
        self._corners = (y0, y1, x0, x1)
        self._reset_background()
        h, w = shape
        mask: np.ndarray | None = None
        for m in self.config.masks:
            if mask is None:
                mask = np.full((h, w), 255, np.uint8)
            pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in m.polygon], np.int32)
            cv2.fillPoly(mask, [pts], 0)
        self._mask = mask  # None: nothing masked, no per-frame AND
        self._tracks.clear()
        self.tamper.reset()

    def _motion_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The background model's frame size for analysed frames of ``shape`` (``detection.motion_scale``)."""
        h, w = shape
        scale = self.config.detection.motion_scale
        return (max(8, h // scale), max(8, w // scale))

    @property
    def _history(self) -> int:
        return max(10, int(self.config.detection.history_s * self.config.analysis_fps))

    def _new_mog(self) -> cv2.BackgroundSubtractorMOG2:
        mog = cv2.createBackgroundSubtractorMOG2(
            history=self._history, varThreshold=self.config.detection.var_threshold, detectShadows=True
        )
        # Three Gaussians per pixel instead of OpenCV's five: a fixed camera's background needs no more, and the
        # model (and the memory it sweeps per frame) shrinks by 40 %.
        mog.setNMixtures(MOG2_MIXTURES)
        # Shadows come out as background (0), so the mask is 0/255 with no threshold pass.
        mog.setShadowValue(0)
        return mog

    def _reset_background(self) -> None:
        self._mogs = [self._new_mog() for _ in self._tiles]
        self._skipped = np.zeros(len(self._tiles), np.int64)
        self._phase = np.arange(len(self._tiles)) % REFRESH_FRAMES
        self._bg_frames = 0
        self._fed = None
        self._fg = None
        self._tracks.clear()

    def _foreground(self, frame: np.ndarray) -> np.ndarray:
        """The background model's foreground (0/255) of a (brightness-normalized) frame: only the tiles that
        changed since they were last fed (or are due a refresh) are fed; the others keep their last foreground."""
        self._bg_frames += 1
        n = self._bg_frames
        skipped = self._skipped
        if self._fed is None or self._fg is None or n <= WARM_FRAMES:
            feed = np.ones(len(self._tiles), bool)
            if self._fed is None or self._fg is None:
                self._fed = frame.copy()
                self._fg = np.zeros(frame.shape[:2], np.uint8)
        else:
            assert self._corners is not None
            diff = cv2.absdiff(frame, self._fed)
            if diff.ndim == 3:
                diff = cv2.cvtColor(diff, cv2.COLOR_BGR2GRAY)
            _, changed = cv2.threshold(diff, GATE_LEVEL, 1, cv2.THRESH_BINARY)
            acc = cv2.integral(changed)
            y0, y1, x0, x1 = self._corners
            counts = acc[y1, x1] - acc[y0, x1] - acc[y1, x0] + acc[y0, x0]
            # Refreshes staggered (tile i at the frames n with (n + i) % REFRESH_FRAMES == 0): no frame feeds all.
            feed = (counts >= GATE_PIXELS) | ((n + self._phase) % REFRESH_FRAMES == 0)
        fed, fg = self._fed, self._fg
        picked = np.flatnonzero(feed)
        # MOG2's own rate (1 / min(2 n, history)), compounded over the frames a tile skipped.
        base = 1.0 / min(2 * n, self._history)
        rates = [-1.0] * len(picked) if n == 1 else (1.0 - (1.0 - base) ** (skipped[picked] + 1)).tolist()
        for i, rate in zip(picked.tolist(), rates, strict=True):
            y0_, y1_, x0_, x1_ = self._tiles[i]
            tile = frame[y0_:y1_, x0_:x1_]
            fg[y0_:y1_, x0_:x1_] = self._mogs[i].apply(tile, learningRate=rate)
            fed[y0_:y1_, x0_:x1_] = tile
        skipped += 1
        skipped[picked] = 0
        self.tiles_fed += len(picked)
        self.tiles_seen += len(feed)
        return fg  # the caller only reads it (the steps after it make new arrays)

    def process(
        self,
        frame: np.ndarray,
        t: float,
        full: Full | None = None,
        lag_s: float = 0.0,
    ) -> list[VideoEvent]:
        """Analyse one small BGR frame at stream time ``t``. ``full``: the full-size frame for the detector (or a
        function giving it, called only when a detector pass runs, or a ``FullPicture`` that converts only the
        regions looked at); ``lag_s``: how old the frame is (its arrival to now), above ``detector.max_lag_s``
        detector passes are skipped."""
        h, w = frame.shape[:2]
        if self._shape != (h, w):
            if self._shape is not None:
                self.resets += 1
                log.info("camera %s: frame size changed to %dx%d, analytics reset", self.config.id, w, h)
            self._setup((h, w))
        self.frames += 1
        self._last_t = t
        events: list[VideoEvent] = []
        tampered = self.tamper.state is not None
        events.extend(self._tamper_events(frame, t))
        if tampered and self.tamper.state is None:
            self._reset_background()
        # The grey level's mean from the channel means (the weights of BGR→grey), without a grey frame.
        # (sumElems: a twentieth of cv2.mean's time on a BGR frame.)
        mh, mw = self._motion_shape((h, w))
        motion = frame if (mh, mw) == (h, w) else cv2.resize(frame, (mw, mh), interpolation=cv2.INTER_AREA)
        b, g, r, _ = cv2.sumElems(motion)
        mean = (0.114 * b + 0.587 * g + 0.299 * r) / (mw * mh)
        # Normalize global brightness so slow lighting drift does not light up the whole background model.
        norm = cv2.convertScaleAbs(motion, alpha=128.0 / mean) if mean > 1 else motion
        fg = self._foreground(norm)
        if (mh, mw) != (h, w):
            fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST)
        if self.tamper.state is not None:
            self._tracks.clear()
            return events
        if self._mask is not None:
            fg = cv2.bitwise_and(fg, self._mask)
        # Opening by 3x3 then dilating by 5x5 is eroding by 3x3 then dilating by 7x7 (one pass fewer).
        fg = cv2.dilate(cv2.erode(fg, KERNEL_3), KERNEL_7)
        if cv2.countNonZero(fg) > 0.5 * fg.size:
            # A global change (lights switched, a cloud, an auto-exposure jump): not objects; learn afresh.
            self._reset_background()
            return events
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_area = self.config.detection.min_area * w * h
        raw = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            raw.append([x, y, x + bw, y + bh])
        boxes = [b for b in _merge_boxes(raw, max(2, h // 60)) if (b[2] - b[0]) * (b[3] - b[1]) >= min_area]
        norm_boxes: list[Box] = [(b[0] / w, b[1] / h, (b[2] - b[0]) / w, (b[3] - b[1]) / h) for b in boxes]
        self._track(norm_boxes, t)
        if self.detector is not None and full is not None:
            rate_ok = self._last_detect is None or t - self._last_detect >= 1 / self.config.detector.fps - 1e-3
            if rate_ok and self._detect(full, t, lag_s):
                self._last_detect = t
        for track in self._tracks.values():
            if track.last_t != t or track.hits < RULE_HITS or track.travel < self.config.detection.min_travel:
                continue
            events.extend(self._rules(track, t))
        for track in self._tracks.values():
            track.prev_foot = track.foot
        return events

    def _track(self, boxes: list[Box], t: float) -> None:
        limit_s = self.config.detection.max_missing_s
        for tid in [k for k, tr in self._tracks.items() if t - tr.last_t > limit_s]:
            del self._tracks[tid]
        pairs: list[tuple[float, int, int]] = []
        tracks = list(self._tracks.values())
        previous = [(tr, tr.box) for tr in tracks if tr.zone_episode]  # tracks in alarm, as they were
        for ti, tr in enumerate(tracks):
            cx, cy = tr.centre
            for bi, b in enumerate(boxes):
                bx, by = b[0] + b[2] / 2, b[1] + b[3] / 2
                d = ((bx - cx) ** 2 + (by - cy) ** 2) ** 0.5
                limit = 0.6 * max(tr.box[2], tr.box[3], b[2], b[3]) + 0.15 * (t - tr.last_t)
                if d <= limit:
                    pairs.append((d, ti, bi))
        pairs.sort()
        used_t: set[int] = set()
        used_b: set[int] = set()
        for _d, ti, bi in pairs:
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            tr = tracks[ti]
            tr.box = boxes[bi]
            tr.last_t = t
            tr.hits += 1
            fx, fy = tr.foot
            tr.travel = max(tr.travel, ((fx - tr.origin[0]) ** 2 + (fy - tr.origin[1]) ** 2) ** 0.5)
        for bi, b in enumerate(boxes):
            if bi in used_b:
                continue
            tr = Track(id=self._next_id, box=b, first_t=t, last_t=t, origin=(b[0] + b[2] / 2, b[1] + b[3]))
            tr.votes = deque(maxlen=self.config.detector.votes)
            self._next_id += 1
            self._tracks[tr.id] = tr
            self._continue_stay(tr, previous)

    def _continue_stay(self, track: Track, previous: list[tuple[Track, Box]]) -> None:
        """A blob that splits off a track in alarm (born with its centre in that track's last box grown by
        ``SPLIT_PAD``: two people walking together, a person and their shadow) continues that track's stay in
        the intrusion zones where it is in alarm: its readings there are repeats of that episode, not a new
        alarm with its own snapshot. Its class is its own (it is looked at as any new track), and loitering zones
        are left out (a stay's time is never handed on)."""
        cx, cy = track.centre
        for parent, (x, y, w, h) in previous:
            px, py = w * SPLIT_PAD, h * SPLIT_PAD
            if not (x - px <= cx <= x + w + px and y - py <= cy <= y + h + py):
                continue
            for zone in self.config.zones:
                episode = parent.zone_episode.get(zone.id)
                if episode is None or not zone.intrusion or zone.loitering_s is not None:
                    continue
                track.zone_episode.setdefault(zone.id, episode)
                track.zone_since.setdefault(zone.id, parent.zone_since.get(zone.id, track.first_t))
                if zone.id in parent.zone_last_emit:
                    track.zone_last_emit.setdefault(zone.id, parent.zone_last_emit[zone.id])

    def _regions(self, tracks: list[Track], fw: int, fh: int) -> list[tuple[list[int], int]]:
        """Pixel regions of the full frame around tracks, each with the longer side it is seen at.

        Each track's box is padded into a square (at least ``MIN_REGION_PX``); squares that touch are merged; a
        region is seen at the scale that brings its largest single-object square to ``detector.region_size``, at
        most ``detector.input_size`` on its longer side. When one region around all of them costs fewer pixels
        than the separate ones (a crowded scene) and still shows the smallest object at a third of the region
        size or more, that one region is looked at instead."""
        cfg = self.config.detector
        boxes: list[list[int]] = []
        for tr in tracks:
            x, y, w, h = tr.box
            side = max(max(w * fw, h * fh) * (1 + cfg.padding), float(MIN_REGION_PX))
            cx, cy = (x + w / 2) * fw, (y + h / 2) * fh
            boxes.append(
                [max(0, int(cx - side / 2)), max(0, int(cy - side / 2)), min(fw, int(cx + side / 2)),
                 min(fh, int(cy + side / 2))]
            )  # fmt: skip

        def sides(b: list[int]) -> int:
            return max(b[2] - b[0], b[3] - b[1], 1)

        def seen(region: list[int], unit: int) -> int:
            return max(32, round(min(float(cfg.input_size), sides(region) * cfg.region_size / unit)))

        def cost(region: list[int], size: int) -> int:
            scale = size / sides(region)
            return -(-round((region[2] - region[0]) * scale) // 32) * -(-round((region[3] - region[1]) * scale) // 32)

        merged = _merge_boxes([list(b) for b in boxes], 0)
        merged.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        out: list[tuple[list[int], int]] = []
        for m in merged[: cfg.max_regions]:
            inside = [b for b in boxes if b[0] >= m[0] and b[1] >= m[1] and b[2] <= m[2] and b[3] <= m[3]]
            out.append((m, seen(m, max((sides(b) for b in inside), default=sides(m)))))
        if len(merged) > 1:
            union = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                     max(b[3] for b in boxes)]  # fmt: skip
            size = seen(union, max(sides(b) for b in boxes))
            smallest = min(sides(b) for b in boxes) * size / sides(union)
            if smallest >= cfg.region_size / 3 and cost(union, size) < sum(cost(r, n) for r, n in out):
                return [(union, size)]
        return out

    def _due(self, track: Track, t: float, ahead: float = 0.0, settled: bool | None = None) -> bool:
        """A new track is due at once; one whose last two votes agree (an object, or nothing the detector knows),
        or whose one vote names a class with a confident score, after ``detector.recheck_s``; one still undecided
        (votes that disagree, a first look that found nothing or little) after a quarter of it; one settled or
        steady after ``STEADY_WAIT`` times it, one sure of its class after ``SURE_WAIT`` times it. ``ahead``: due
        within that many seconds."""
        if track.detected_t is None:
            return True
        votes = track.votes
        wait = self.config.detector.recheck_s
        if (len(votes) == 1 and (votes[0][0] is None or votes[0][1] < CONFIDENT)) or (
            len(votes) >= 2 and votes[-1][0] != votes[-2][0]
        ):
            wait /= 4
        elif len(votes) >= SURE_VOTES and self._sure(track):
            wait *= SURE_WAIT
        elif (self._settled(track) if settled is None else settled) or (len(votes) >= 2 and self._steady(track)):
            wait *= STEADY_WAIT
        return t + ahead - track.detected_t >= wait - 1e-3

    @staticmethod
    def _sure(track: Track) -> bool:
        """The track's last ``SURE_VOTES`` votes name one class, each with a confident score."""
        last = list(track.votes)[-SURE_VOTES:]
        label = last[0][0]
        return label is not None and all(lab == label and score >= CONFIDENT for lab, score in last)

    def _settled(self, track: Track, zones: list[ZoneConfig] | None = None) -> bool:
        """The track's alarms are raised: it has an open episode in every class-filtered zone its foot is in
        (``zones``, when known), none of them waits for loitering and no line filters classes. Its votes then
        serve only the repeats."""
        if any(line.objects != "any" for line in self.config.tripwires):
            return False
        if zones is None:
            foot = track.foot
            zones = [z for z in self.config.zones if z.objects != "any" and self._inside(z, foot)]
        return bool(zones) and all(
            (not zone.intrusion or zone.id in track.zone_episode)
            and (zone.loitering_s is None or zone.id in track.loiter_last_emit)
            for zone in zones
        )

    @staticmethod
    def _steady(track: Track) -> bool:
        """The track's box has the area and aspect it had at the last look, within ``STEADY_SHAPE``."""
        if track.looked_box is None:
            return False
        _, _, w0, h0 = track.looked_box
        _, _, w, h = track.box
        if min(w0, h0, w, h) <= 0:
            return False
        area, aspect = (w * h) / (w0 * h0), (w / h) / (w0 / h0)
        return 1 / STEADY_SHAPE <= area <= STEADY_SHAPE and 1 / STEADY_SHAPE <= aspect <= STEADY_SHAPE

    def _detect(self, full: Full, t: float, lag_s: float = 0.0) -> bool:
        """One detector pass over the regions of the tracks due a look; False when none is (or the pass was
        skipped because the worker is behind)."""
        assert self.detector is not None
        cfg = self.config.detector
        stats = self.detector_stats
        # Only tracks a class filter will ask about: in a zone that names classes, or anywhere when a line does.
        zones = [z for z in self.config.zones if z.objects != "any"]
        anywhere = any(line.objects != "any" for line in self.config.tripwires)
        candidates: list[Track] = []
        settled: dict[int, bool] = {}
        # A track is looked at once the rules would count it (seen RULE_HITS times, moved min_travel): the look runs
        # before the rules in the same frame, so no later; fragments that die sooner and swaying things never are.
        hits, travel = (RULE_HITS, self.config.detection.min_travel) if LOOK_WHEN_COUNTED else (2, 0.0)
        for tr in self._tracks.values():
            if tr.last_t != t or tr.hits < hits or tr.travel < travel:
                continue
            foot = tr.foot
            inside = [z for z in zones if self._inside(z, foot)]
            if anywhere or inside:
                candidates.append(tr)
                settled[tr.id] = self._settled(tr, inside)
        if not any(self._due(tr, t, settled=settled[tr.id]) for tr in candidates):
            return False
        # Tracks due within half the recheck time join this pass: their looks fall together, fewer passes.
        due = [tr for tr in candidates if self._due(tr, t, cfg.recheck_s / 2, settled[tr.id])]
        stats.due += 1
        stats.lag_s = lag_s
        if lag_s > cfg.max_lag_s:
            stats.skipped += 1
            return False
        crop: Callable[[int, int, int, int], np.ndarray]
        if isinstance(full, np.ndarray) or callable(full):
            image = full if isinstance(full, np.ndarray) else full()

            def crop(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
                return image[y0:y1, x0:x1]

            fh, fw = image.shape[:2]
        else:
            crop = full.crop
            fh, fw = full.shape[:2]
        found: list[Detection] = []
        regions = self._regions(due, fw, fh)
        pixels = self.detector.pixels
        for (x0, y0, x1, y1), seen in regions:
            for d in self.detector.detect(crop(x0, y0, x1, y1), seen):
                bx0, by0, bx1, by1 = d.box
                found.append(
                    Detection(d.label, d.score, ((bx0 + x0) / fw, (by0 + y0) / fh, (bx1 + x0) / fw, (by1 + y0) / fh))
                )
            stats.inferences += 1
            stats.cpu_s += self.detector.last_cpu_s
            stats.latency[_bucket(LATENCY_BUCKETS, self.detector.last_wall_s)] += 1
            stats.latency_sum += self.detector.last_wall_s
        stats.passes += 1
        stats.pixels += self.detector.pixels - pixels
        stats.regions[_bucket(REGION_BUCKETS, len(regions))] += 1
        stats.regions_sum += len(regions)
        looked = [(x0 / fw, y0 / fh, x1 / fw, y1 / fh) for (x0, y0, x1, y1), _ in regions]
        due_ids = {tr.id for tr in due}
        for tr in candidates:
            x, y, w, h = tr.box
            # A track not due gets a vote too when a region looked at for another covers it whole.
            if tr.id not in due_ids and not any(
                rx0 <= x and ry0 <= y and x + w <= rx1 and y + h <= ry1 for rx0, ry0, rx1, ry1 in looked
            ):
                continue
            mx, my = w * 0.15, h * 0.15
            best: Detection | None = None
            for d in found:
                cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
                if x - mx <= cx <= x + w + mx and y - my <= cy <= y + h + my and (best is None or d.score > best.score):
                    best = d
            tr.votes.append((best.label, best.score) if best is not None else (None, 0.0))
            tr.detected_t = t
            tr.looked_box = tr.box
        return True

    @staticmethod
    def verdict(track: Track, classes: list[str], min_score: float) -> tuple[str, float] | None:
        """The class among ``classes`` that the track's rolling vote settles on: named by at least half of its
        last votes with a mean score of at least ``min_score``; None when none is."""
        votes = list(track.votes)
        if not votes:
            return None
        need = math.ceil(len(votes) / 2)
        best: tuple[str, float] | None = None
        for label in classes:
            scores = [s for lab, s in votes if lab == label]
            if len(scores) >= need:
                mean = sum(scores) / len(scores)
                if mean >= min_score and (best is None or mean > best[1]):
                    best = (label, mean)
        return best

    def _fits(self, track: Track, rule: ZoneConfig | TripwireConfig) -> tuple[str, float] | None:
        """None when the track does not count for the rule; else its class and score (('', 0) for any object)."""
        height = track.box[3]
        if not rule.min_size <= height <= rule.max_size:
            return None
        if rule.objects == "any":
            return ("", 0.0)
        return self.verdict(track, list(rule.objects), rule.min_score)

    def _rules(self, track: Track, t: float) -> list[VideoEvent]:
        events: list[VideoEvent] = []
        foot = track.foot
        repeat_s = self.config.repeat_s
        for zone in self.config.zones:
            fit = self._fits(track, zone) if self._inside(zone, foot) else None
            if fit is None:
                if zone.id not in track.zone_since:
                    continue
                out = track.zone_out_since.setdefault(zone.id, t)
                # Out and back in within the dwell (or the tracker's gap) is one stay: one episode, dwell kept.
                if t - out < max(self.config.detection.max_missing_s, zone.dwell_s):
                    continue
                track.zone_out_since.pop(zone.id, None)
                track.zone_since.pop(zone.id, None)
                track.zone_episode.pop(zone.id, None)
                track.zone_last_emit.pop(zone.id, None)
                track.loiter_last_emit.pop(zone.id, None)
                continue
            track.zone_out_since.pop(zone.id, None)
            since = track.zone_since.setdefault(zone.id, t)
            dwell = t - since
            if zone.intrusion and dwell >= zone.dwell_s:
                last = track.zone_last_emit.get(zone.id)
                if last is None or t - last >= repeat_s:
                    name = f"{self.config.id}:{zone.id}:{track.id}:{since:.2f}"
                    episode = track.zone_episode.setdefault(zone.id, name)
                    n = 0 if last is None else round((t - since - zone.dwell_s) / repeat_s)
                    track.zone_last_emit[zone.id] = t
                    events.append(
                        self._object_event("video.intrusion", zone.id, t, episode, n, track, dwell_s=dwell, fit=fit)
                    )
            if zone.loitering_s is not None and dwell >= zone.loitering_s:
                last = track.loiter_last_emit.get(zone.id)
                if last is None or t - last >= repeat_s:
                    n = 0 if last is None else round((t - since - zone.loitering_s) / repeat_s)
                    episode = f"{self.config.id}:{zone.id}:loiter:{track.id}:{since:.2f}"
                    track.loiter_last_emit[zone.id] = t
                    events.append(
                        self._object_event("video.loitering", zone.id, t, episode, n, track, dwell_s=dwell, fit=fit)
                    )
        prev = track.prev_foot
        for line in self.config.tripwires:
            side = geometry.cross(line.a, line.b, foot)
            committed = track.line_side.get(line.id)
            if abs(side) < 1e-4:
                continue
            if committed is None:
                track.line_side[line.id] = side
                continue
            if (side > 0) == (committed > 0):
                continue
            track.line_side[line.id] = side
            start = prev if prev is not None else track.origin
            if not geometry.segments_intersect(start, foot, line.a, line.b):
                # Went round the end of the line, not across it.
                continue
            direction = "a_to_b" if committed > 0 else "b_to_a"
            if line.direction not in ("both", direction):
                continue
            fit = self._fits(track, line)
            if fit is None:
                continue
            episode = f"{self.config.id}:{line.id}:{track.id}:{t:.2f}"
            events.append(
                self._object_event("video.tripwire", line.id, t, episode, 0, track, direction=direction, fit=fit)
            )
        return events

    def _object_event(
        self,
        kind: str,
        channel: str,
        t: float,
        episode: str,
        repeat: int,
        track: Track,
        *,
        dwell_s: float | None = None,
        direction: str | None = None,
        fit: tuple[str, float] | None = None,
    ) -> VideoEvent:
        return VideoEvent(
            kind=kind,
            value="alarm",
            channel=channel,
            t=t,
            episode=episode,
            repeat=repeat,
            object_id=track.id,
            box=tuple(round(v, 4) for v in track.box),  # type: ignore[arg-type]
            direction=direction,
            dwell_s=None if dwell_s is None else round(dwell_s, 2),
            label=fit[0] if fit and fit[0] else None,
            score=round(fit[1], 3) if fit and fit[0] else None,
        )

    def _tamper_events(self, frame: np.ndarray, t: float) -> list[VideoEvent]:
        if not self.config.tamper.enabled:
            return []
        if self._tamper_checked is not None and t - self._tamper_checked < 1 / self.config.tamper.check_fps - 1e-6:
            return []
        self._tamper_checked = t
        before = self.tamper.state
        state = self.tamper.update(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), t)
        if state is None:
            self._tamper_episode = None
            return []
        if state != before or self._tamper_episode is None:
            self._tamper_count += 1
            self._tamper_episode = f"{self.config.id}:tamper:{state}:{self._tamper_count}"
            self._tamper_last_emit = t
            self._tamper_repeat = 0
        elif t - self._tamper_last_emit >= self.config.repeat_s:
            self._tamper_last_emit = t
            self._tamper_repeat += 1
        else:
            return []
        return [
            VideoEvent(
                kind="video.tamper",
                value=state,
                channel=None,
                t=t,
                episode=self._tamper_episode,
                repeat=self._tamper_repeat,
            )
        ]
