"""Analysis of radiometric frames per region of interest, with the small history it needs.

``ThermalState`` is the per-device object the transport owns (``driver.new_state(device)``). It holds,
per region, the current level and fire state, a pending change with the time it started (filter time),
and a short history of the region's maximum (rate of rise). All times are the frames' own timestamps,
so ``analyse`` is pure given the state: the same frames in the same order give the same readings. A
frame older than the last one analysed still yields its ``thermal.roi`` reading but does not move the
state, so duplicated or reordered frames cannot open or close a level.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt
from sharpeye.ingest.reading import Reading
from sharpeye.ingest.thermal.config import ThermalConfig, ThermalRoi
from sharpeye.ingest.thermal.frame import Frame, Temps

Level = Literal["normal", "pre_alarm", "alarm"]
_RANK: dict[Level, int] = {"normal": 0, "pre_alarm": 1, "alarm": 2}
FireState = Literal["normal", "alarm"]
MAX_HISTORY = 4096
S = TypeVar("S", bound=str)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Where a region lies in a frame of one size: a box of slices, or for polygons the flat pixel indices."""

    ys: slice
    xs: slice
    index: npt.NDArray[np.intp] | None  # polygon pixels as indices into the flattened frame


def _span(low: float, high: float, size: int) -> slice:
    """Pixels whose centres lie in [low, high) of a normalized axis; at least one pixel."""
    start = max(0, math.ceil(low * size - 0.5))
    stop = min(size, math.ceil(high * size - 0.5))
    if stop <= start:
        start = min(size - 1, max(0, int(low * size)))
        stop = start + 1
    return slice(start, stop)


def geometry(roi: ThermalRoi, width: int, height: int) -> Geometry:
    """The pixels of ``roi`` in a ``width`` x ``height`` frame (pixel centres inside the shape)."""
    if roi.rect is not None:
        return Geometry(_span(roi.rect.y0, roi.rect.y1, height), _span(roi.rect.x0, roi.rect.x1, width), None)
    if roi.polygon is None:
        return Geometry(slice(0, height), slice(0, width), None)
    xs_poly = np.array([p.x for p in roi.polygon]) * width
    ys_poly = np.array([p.y for p in roi.polygon]) * height
    cx = np.arange(width) + 0.5
    cy = (np.arange(height) + 0.5)[:, None]
    inside = np.zeros((height, width), dtype=bool)
    x_prev, y_prev = xs_poly[-1], ys_poly[-1]
    for x_cur, y_cur in zip(xs_poly, ys_poly, strict=True):  # even-odd rule, vectorised over pixels
        if y_cur != y_prev:
            crosses = (y_cur > cy) != (y_prev > cy)
            x_at = x_cur + (cy - y_cur) * (x_prev - x_cur) / (y_prev - y_cur)
            inside ^= crosses & (cx < x_at)
        x_prev, y_prev = x_cur, y_cur
    if not inside.any():  # a sliver thinner than a pixel: keep the pixel under its centroid
        col = min(width - 1, int(xs_poly.mean()))
        row = min(height - 1, int(ys_poly.mean()))
        inside[row, col] = True
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    ys = slice(int(rows[0]), int(rows[-1]) + 1)
    xs = slice(int(cols[0]), int(cols[-1]) + 1)
    return Geometry(ys, xs, np.flatnonzero(inside.ravel()))


@dataclass(frozen=True, slots=True)
class Stats:
    max: float
    avg: float
    min: float
    x: float  # hottest point, normalized
    y: float


def stats(temps: Temps, geo: Geometry) -> Stats:
    height, width = temps.shape
    if geo.index is None:
        region = temps[geo.ys, geo.xs]
        flat = int(region.argmax())
        row, col = divmod(flat, region.shape[1])
        row, col = row + geo.ys.start, col + geo.xs.start
        hottest = float(temps[row, col])
        total, low, count = float(region.sum(dtype=np.float64)), float(region.min()), region.size
    else:
        values = temps.ravel().take(geo.index)
        k = int(values.argmax())
        row, col = divmod(int(geo.index[k]), width)
        hottest = float(values[k])
        total, low, count = float(values.sum(dtype=np.float64)), float(values.min()), values.size
    return Stats(max=hottest, avg=total / count, min=low, x=(col + 0.5) / width, y=(row + 0.5) / height)


@dataclass(slots=True)
class RoiState:
    level: Level | None = None  # None until the first frame
    pending: Level | None = None
    pending_since: float = 0.0
    fire: FireState | None = None
    fire_pending: FireState | None = None
    fire_pending_since: float = 0.0
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=MAX_HISTORY))


@dataclass(slots=True)
class ThermalState:
    """Per-device history, owned by the transport; see the module docstring."""

    rois: dict[str, RoiState] = field(default_factory=dict)
    geometries: dict[tuple[int, int], list[Geometry]] = field(default_factory=dict)
    last_t: float = -math.inf

    def geometry(self, device: ThermalConfig, width: int, height: int) -> list[Geometry]:
        key = (width, height)
        if key not in self.geometries:
            self.geometries[key] = [geometry(roi, width, height) for roi in device.rois]
        return self.geometries[key]


def _level(roi: ThermalRoi, value: float) -> Level:
    if roi.alarm_c is not None and value >= roi.alarm_c:
        return "alarm"
    if roi.pre_alarm_c is not None and value >= roi.pre_alarm_c:
        return "pre_alarm"
    return "normal"


def _candidate_level(roi: ThermalRoi, current: Level | None, value: float) -> Level:
    """The level the value asks for, held up by the tolerance band while falling."""
    target = _level(roi, value)
    if current is not None and _RANK[target] < _RANK[current]:
        held = _level(roi, value + roi.tolerance_c)
        if _RANK[held] > _RANK[target]:
            target = held if _RANK[held] <= _RANK[current] else current
    return target


def _rise_per_min(history: deque[tuple[float, float]], t: float, value: float, window_s: float) -> float | None:
    """Rise of the max against the window's older half, °C per minute (None: no earlier frame).

    The baseline is the hottest frame of the older half of the window (of all earlier frames while the
    history is shorter than that): a fire that keeps growing is always hotter than its own past, but a hot
    object that a person briefly hides (a chimney, an engine) is not, so its reappearance is no "rise".
    """
    while history and history[0][0] < t - window_s:
        history.popleft()
    older = [sample for sample in history if sample[0] <= t - window_s / 2] or list(history)
    if not older:
        return None
    t_old, v_old = max(older, key=lambda sample: sample[1])
    if t <= t_old:
        return None
    return (value - v_old) / (t - t_old) * 60


def _filtered(
    current: S | None, baseline: S, candidate: S, pending: S | None, since: float, t: float, hold: float
) -> tuple[S, S | None, float]:
    """Apply the filter time: returns (new current, pending, pending since). No history starts at ``baseline``."""
    if current is None:
        current = baseline
    if candidate == current:
        return current, None, t
    if pending != candidate:
        pending, since = candidate, t
    if t - since >= hold:
        return candidate, None, t
    return current, pending, since


def analyse(device: ThermalConfig, frame: Frame, state: ThermalState) -> list[Reading]:
    """Readings for one frame: ``thermal.roi`` always, ``thermal.level``/``thermal.fire`` when they change."""
    t = frame.ts.timestamp()
    in_order = t > state.last_t
    if in_order:
        state.last_t = t
    readings: list[Reading] = []
    for roi, geo in zip(device.rois, state.geometry(device, frame.width, frame.height), strict=True):
        s = stats(frame.temps, geo)
        rs = state.rois.setdefault(roi.id, RoiState())
        rise: float | None = None
        if roi.fire is not None and in_order:
            rise = _rise_per_min(rs.history, t, s.max, roi.fire.window_s)
            rs.history.append((t, s.max))
        attrs: dict[str, object] = {
            "avg": round(s.avg, 2),
            "min": round(s.min, 2),
            "x": round(s.x, 4),
            "y": round(s.y, 4),
        }
        if rise is not None:
            attrs["rise_c_per_min"] = round(rise, 2)
        readings.append(_reading(device, frame, roi.id, "thermal.roi", round(s.max, 2), attrs))
        if not in_order:
            continue
        if roi.alarm_c is not None:
            value = s.max if roi.metric == "max" else s.avg
            candidate = _candidate_level(roi, rs.level, value)
            before = rs.level
            rs.level, rs.pending, rs.pending_since = _filtered(
                rs.level, "normal", candidate, rs.pending, rs.pending_since, t, roi.filter_s
            )
            if rs.level != before:
                level_attrs = {**attrs, "max": round(s.max, 2), "metric": roi.metric, "metric_c": round(value, 2)}
                readings.append(_reading(device, frame, roi.id, "thermal.level", rs.level, level_attrs))
        if roi.fire is not None:
            fire = roi.fire
            hot = s.max >= fire.min_c and rise is not None and rise >= fire.rise_c_per_min
            confirmed = fire.confirm_c is not None and s.max >= fire.confirm_c
            candidate_fire: FireState = "alarm" if hot or confirmed else "normal"
            if rs.fire == "alarm" and candidate_fire == "normal" and s.max >= fire.min_c - roi.tolerance_c:
                candidate_fire = "alarm"  # a fire stays a fire until it cools below min_c - tolerance
            before_fire = rs.fire
            rs.fire, rs.fire_pending, rs.fire_pending_since = _filtered(
                rs.fire, "normal", candidate_fire, rs.fire_pending, rs.fire_pending_since, t, roi.filter_s
            )
            if rs.fire != before_fire:
                readings.append(
                    _reading(device, frame, roi.id, "thermal.fire", rs.fire, {**attrs, "max": round(s.max, 2)})
                )
    return readings


def _reading(
    device: ThermalConfig, frame: Frame, channel: str, kind: str, value: float | str, attrs: dict[str, object]
) -> Reading:
    return Reading(
        device_id=device.id, kind=kind, value=value, ts=frame.ts, seq=frame.seq, channel=channel, attrs=attrs
    )
