"""Class-case analysis: recurring same-category cases close in place and time come out as ranked clusters."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Case, GeoPoint, Source, Stage
from sharpeye.governance.cluster import distance_m, find_clusters, merge_candidates

from tests.governance.casebook import cst

MARKET = GeoPoint(lat=30.2741, lon=120.1551)


def near(base: GeoPoint, north_m: float, east_m: float) -> GeoPoint:
    return GeoPoint(
        lat=base.lat + north_m / 111_320.0,
        lon=base.lon + east_m / (111_320.0 * math.cos(math.radians(base.lat))),
    )


def case(
    n: int, category: str, at: datetime, where: GeoPoint | None, grid: str = "hedong-g1", stage: Stage = Stage.closed
) -> Case:
    return Case(
        id=f"C{n:03d}",
        title="t",
        category=category,
        severity=Severity.minor,
        source=Source.grid_worker,
        stage=stage,
        org_unit=grid,
        created_at=at,
        updated_at=at,
        location=where,
    )


def test_distance() -> None:
    assert abs(distance_m(MARKET, near(MARKET, 300, 0)) - 300) < 1
    assert abs(distance_m(MARKET, near(MARKET, 0, 400)) - 400) < 1


def test_recurring_problems_rank_first() -> None:
    t0 = cst(2026, 3, 2, 9)
    cases = [
        # 占道经营 at the market: six reports over ten days, each within 300 m of another (a chain that
        # reaches 450 m end to end).
        case(1, "city_appearance", t0, MARKET),
        case(2, "city_appearance", t0 + timedelta(days=2), near(MARKET, 80, 40)),
        case(3, "city_appearance", t0 + timedelta(days=3), near(MARKET, 250, 0)),
        case(4, "city_appearance", t0 + timedelta(days=6), near(MARKET, 450, 0)),
        case(5, "city_appearance", t0 + timedelta(days=9), near(MARKET, -30, 10)),
        case(6, "city_appearance", t0 + timedelta(days=10), MARKET),
        # a duplicate merged into case 1 does not count again
        case(7, "city_appearance", t0 + timedelta(days=1), MARKET, stage=Stage.merged),
        # the same category 2 km away, three times but ten days apart: not a cluster
        case(8, "city_appearance", t0, near(MARKET, 2000, 0)),
        case(9, "city_appearance", t0 + timedelta(days=10), near(MARKET, 2000, 0)),
        case(10, "city_appearance", t0 + timedelta(days=20), near(MARKET, 2000, 0)),
        # disputes at the market: another category, its own cluster
        case(11, "dispute", t0 + timedelta(hours=1), MARKET),
        case(12, "dispute", t0 + timedelta(days=1), near(MARKET, 20, 20)),
        case(13, "dispute", t0 + timedelta(days=4), near(MARKET, -50, 0)),
        # hotline reports with no position, same village grid, four in a week
        *[case(20 + i, "environment", t0 + timedelta(days=i * 2), None, grid="shanxia-g2") for i in range(4)],
        case(30, "environment", t0 + timedelta(days=3), None, grid="hedong-g2"),
    ]
    clusters = find_clusters(cases, radius_m=300, window=timedelta(days=7), min_size=3)
    assert [(c.category, c.members) for c in clusters] == [
        ("city_appearance", ("C001", "C002", "C003", "C004", "C005", "C006")),
        ("environment", ("C020", "C021", "C022", "C023")),
        ("dispute", ("C011", "C012", "C013")),
    ]
    top = clusters[0]
    assert top.first == t0 and top.last == t0 + timedelta(days=10) and top.org_units == ("hedong-g1",)
    assert top.centre is not None and distance_m(top.centre, MARKET) < 200
    assert clusters[1].centre is None
    # A period filter keeps only what was reported inside it; without C003 the link to C004 (450 m from
    # the market) is gone.
    later = find_clusters(cases, start=t0 + timedelta(days=5), min_size=2)
    assert [c.members for c in later] == [("C005", "C006")]


def brute_force(cases: list[Case], radius_m: float, window: timedelta, min_size: int) -> set[frozenset[str]]:
    live = [c for c in cases if c.stage not in (Stage.cancelled, Stage.merged)]
    parent = {c.id: c.id for c in live}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for a in live:
        for b in live:
            if a.id >= b.id or a.category != b.category or abs(a.created_at - b.created_at) > window:
                continue
            if a.location is not None and b.location is not None:
                linked = distance_m(a.location, b.location) <= radius_m
            else:
                linked = a.org_unit == b.org_unit
            if linked:
                parent[find(a.id)] = find(b.id)
    groups: dict[str, set[str]] = {}
    for c in live:
        groups.setdefault(find(c.id), set()).add(c.id)
    return {frozenset(g) for g in groups.values() if len(g) >= min_size}


@example(raw=[("b", 0, (0, -40), "g1"), ("b", 0, (-234, 13), "g1")])  # two latitudes, one cell grid
@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(0, 30 * 24),
            st.one_of(st.none(), st.tuples(st.integers(-800, 800), st.integers(-800, 800))),
            st.sampled_from(["g1", "g2"]),
        ),
        max_size=40,
    )
)
def test_agrees_with_brute_force(raw: list[tuple[str, int, tuple[int, int] | None, str]]) -> None:
    t0 = cst(2026, 3, 1)
    cases = [
        case(i, cat, t0 + timedelta(hours=h), near(MARKET, *xy) if xy else None, grid=grid)
        for i, (cat, h, xy, grid) in enumerate(raw)
    ]
    found = {frozenset(c.members) for c in find_clusters(cases, radius_m=300, window=timedelta(days=3), min_size=2)}
    assert found == brute_force(cases, 300, timedelta(days=3), 2)


def test_merge_candidates_for_a_new_report() -> None:
    t0 = cst(2026, 3, 2, 9)
    new = case(100, "city_appearance", t0 + timedelta(hours=3), near(MARKET, 30, 0), stage=Stage.reported)
    others = [
        case(1, "city_appearance", t0, near(MARKET, 150, 0), stage=Stage.handling),  # 120 m, 3 h
        case(2, "city_appearance", t0 + timedelta(hours=2), MARKET, stage=Stage.dispatched),  # 30 m, 1 h
        case(3, "city_appearance", t0, near(MARKET, 600, 0), stage=Stage.handling),  # too far
        case(4, "city_appearance", t0 - timedelta(days=3), MARKET, stage=Stage.handling),  # too long ago
        case(5, "city_appearance", t0, MARKET, stage=Stage.closed),  # closed: nothing to merge into
        case(6, "dispute", t0, MARKET, stage=Stage.handling),  # another category
        case(7, "city_appearance", t0, None, stage=Stage.accepted),  # no position, same grid
        case(8, "city_appearance", t0, None, grid="shanxia-g1", stage=Stage.accepted),  # no position, elsewhere
    ]
    found = merge_candidates(new, others, radius_m=200, window=timedelta(hours=24))
    assert [m.case_id for m in found] == ["C002", "C001", "C007"]
    assert found[0].distance_m is not None and abs(found[0].distance_m - 30) < 1
    assert found[0].gap == timedelta(hours=1) and found[2].distance_m is None
