"""Class-case analysis (类案分析): cases of one category that recur close together in place and time.

Two cases are linked when they share a category, were reported within ``window`` of each other, and
lie within ``radius_m`` of each other (by position when both have one, otherwise by being in the same
org unit). Clusters are the connected groups of links (single linkage), so a problem that keeps
coming back along one street shows up as one item with all its cases, ranked by how many cases it has.
Cancelled and merged cases are left out (not cases, or already counted in the case they joined).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sharpeye.governance.case import Case, GeoPoint, Stage

_EARTH_M = 6_371_000.0
_SKIP = frozenset({Stage.cancelled, Stage.merged})


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class CaseCluster:
    """One recurring problem: its cases (oldest first), when and where."""

    category: str
    members: tuple[str, ...]
    first: datetime
    last: datetime
    org_units: tuple[str, ...]
    centre: GeoPoint | None

    @property
    def size(self) -> int:
        return len(self.members)


class _Sets:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def find_clusters(
    cases: Iterable[Case],
    *,
    radius_m: float = 300.0,
    window: timedelta = timedelta(days=7),
    min_size: int = 3,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[CaseCluster]:
    """Clusters of at least ``min_size`` cases reported in [start, end), largest first.

    Cost: each case is compared only with earlier cases of its category within ``window`` that sit in
    its own or a neighbouring grid cell of ``radius_m`` (or in its org unit), not with every case.
    """
    if radius_m <= 0 or min_size < 2:
        raise ValueError("radius_m must be positive and min_size at least 2")
    by_category: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        if case.stage in _SKIP:
            continue
        if (start is not None and case.created_at < start) or (end is not None and case.created_at >= end):
            continue
        by_category[case.category].append(case)
    out: list[CaseCluster] = []
    for category, group in by_category.items():
        out.extend(_cluster(category, group, radius_m, window, min_size))
    out.sort(key=lambda c: (-c.size, c.last - c.first, -c.last.timestamp(), c.members[0]))
    return out


def _steps(cases: list[Case], radius_m: float) -> tuple[float, float]:
    """Cell size in degrees, one for all cases: at least ``radius_m`` wide everywhere (the longitude step
    is taken at the highest latitude present, where a degree is shortest), so that two cases within the
    radius are always in the same or neighbouring cells."""
    top = max((abs(c.location.lat) for c in cases if c.location is not None), default=0.0)
    lat_step = radius_m / 111_320.0
    lon_step = radius_m / (111_320.0 * max(0.01, math.cos(math.radians(min(top, 89.0)))))
    return lat_step, lon_step


def _cell(point: GeoPoint, steps: tuple[float, float]) -> tuple[int, int]:
    return math.floor(point.lat / steps[0]), math.floor(point.lon / steps[1])


def _cluster(category: str, cases: list[Case], radius_m: float, window: timedelta, min_size: int) -> list[CaseCluster]:
    cases.sort(key=lambda c: (c.created_at, c.id))
    steps = _steps(cases, radius_m)
    sets = _Sets(len(cases))
    recent: deque[int] = deque()
    cells: dict[tuple[int, int], list[int]] = defaultdict(list)
    units: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        while recent and case.created_at - cases[recent[0]].created_at > window:
            old = recent.popleft()
            units[cases[old].org_unit].remove(old)
            loc = cases[old].location
            if loc is not None:
                cells[_cell(loc, steps)].remove(old)
        if case.location is not None:
            cy, cx = _cell(case.location, steps)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    for j in cells.get((cy + dy, cx + dx), ()):
                        other = cases[j].location
                        if other is not None and distance_m(case.location, other) <= radius_m:
                            sets.union(i, j)
            for j in units.get(case.org_unit, ()):
                if cases[j].location is None:
                    sets.union(i, j)
            cells[(cy, cx)].append(i)
        else:
            for j in units.get(case.org_unit, ()):
                sets.union(i, j)
        units[case.org_unit].append(i)
        recent.append(i)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(cases)):
        groups[sets.find(i)].append(i)
    clusters: list[CaseCluster] = []
    for members in groups.values():
        if len(members) < min_size:
            continue
        chosen = [cases[i] for i in members]
        located = [c.location for c in chosen if c.location is not None]
        centre = (
            GeoPoint(lat=sum(p.lat for p in located) / len(located), lon=sum(p.lon for p in located) / len(located))
            if located
            else None
        )
        clusters.append(
            CaseCluster(
                category=category,
                members=tuple(c.id for c in chosen),
                first=chosen[0].created_at,
                last=chosen[-1].created_at,
                org_units=tuple(sorted({c.org_unit for c in chosen})),
                centre=centre,
            )
        )
    return clusters


@dataclass(frozen=True, slots=True)
class MergeCandidate:
    """An open case that a new report probably repeats (并单 proposal), with how close it is."""

    case_id: str
    distance_m: float | None
    gap: timedelta


def merge_candidates(
    report: Case,
    cases: Iterable[Case],
    *,
    radius_m: float = 200.0,
    window: timedelta = timedelta(hours=24),
) -> list[MergeCandidate]:
    """Cases a new report may duplicate: same category, not closed or cancelled or merged, reported within
    ``window`` of it, within ``radius_m`` (or in the same org unit when either has no position). Nearest
    first (by distance, then time). A proposal only: merging is the ``merge`` action, taken by a person."""
    out: list[MergeCandidate] = []
    for other in cases:
        if other.id == report.id or other.category != report.category or other.stage.terminal:
            continue
        gap = abs(report.created_at - other.created_at)
        if gap > window:
            continue
        if report.location is not None and other.location is not None:
            dist: float | None = distance_m(report.location, other.location)
            if dist is None or dist > radius_m:
                continue
        elif report.org_unit == other.org_unit:
            dist = None
        else:
            continue
        out.append(MergeCandidate(other.id, dist, gap))
    out.sort(key=lambda m: (m.distance_m if m.distance_m is not None else radius_m, m.gap, m.case_id))
    return out
