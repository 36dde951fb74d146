"""Zones include their edges, and a track that steps out and back within the dwell stays one intrusion."""

from __future__ import annotations

from typing import Any

import pytest
from sharpeye.ingest.camera import geometry
from sharpeye.ingest.camera.analyzer import Analyzer, Track
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.event import VideoEvent

LOWER_HALF = [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]


@pytest.mark.parametrize("point", [(0.5, 1.0), (0.0, 0.7), (1.0, 1.0), (0.0, 1.0), (0.3, 0.5), (1.0, 0.5)])
def test_points_on_the_border_of_a_zone_are_inside(point: tuple[float, float]) -> None:
    assert geometry.contains(LOWER_HALF, point)


@pytest.mark.parametrize("point", [(0.5, 0.4999), (0.5, 1.0001), (-0.0001, 0.7)])
def test_points_just_outside_are_outside(point: tuple[float, float]) -> None:
    assert not geometry.contains(LOWER_HALF, point)


def test_slanted_edges_include_their_points() -> None:
    triangle = [(0.1, 0.9), (0.9, 0.9), (0.5, 0.1)]
    assert geometry.contains(triangle, (0.3, 0.5))  # on the left edge
    assert not geometry.contains(triangle, (0.29, 0.5))


def _analyzer(**zone: Any) -> Analyzer:
    config = CameraConfig.model_validate(
        {"id": "cam", "kind": "camera", "name": "cam", "grid": "g1", "url": "synthetic:intrusion",
         "zones": [{"id": "lawn", "polygon": LOWER_HALF, "dwell_s": 0.5, **zone}]}
    )  # fmt: skip
    return Analyzer(config)


def _walk(analyzer: Analyzer, feet: list[tuple[float, float, float]]) -> list[VideoEvent]:
    """Feed one track whose foot point is at (x, y) at time t, as the tracker would leave it."""
    track = Track(id=1, box=(0, 0, 0.1, 0.2), first_t=0, last_t=0, origin=(0, 0), hits=5, travel=1)
    events: list[VideoEvent] = []
    for t, x, y in feet:
        track.box = (x - 0.05, y - 0.2, 0.1, 0.2)
        track.last_t = t
        events.extend(analyzer._rules(track, t))
        track.prev_foot = track.foot
    return events


def test_a_person_walking_along_the_bottom_of_the_picture_is_one_intrusion() -> None:
    # A box touching the frame's bottom has its foot point at y = 1.0, on the zone's edge.
    feet = [(i / 5, 0.1 + i * 0.02, 1.0) for i in range(40)]
    events = _walk(_analyzer(), feet)
    assert events, "a foot point on the frame border is inside a zone drawn to that border"
    assert len({e.episode for e in events}) == 1
    assert [e.repeat for e in events if e.repeat == 0] == [0]


def test_stepping_out_and_back_within_the_dwell_is_one_stay() -> None:
    analyzer = _analyzer(dwell_s=2.0)
    inside = [(i / 5, 0.5, 0.8) for i in range(0, 15)]  # 0 .. 2.8 s in
    out = [(3 + i / 5, 0.5, 0.3) for i in range(0, 8)]  # 3.0 .. 4.4 s out (< dwell_s)
    back = [(4.6 + i / 5, 0.5, 0.8) for i in range(0, 15)]
    events = _walk(analyzer, inside + out + back)
    assert len({e.episode for e in events}) == 1
    assert max(e.dwell_s or 0 for e in events) >= 6.9  # counted from the first entry (0 s), not the return (4.6 s)
    # Out for longer than the dwell: a new stay.
    again = _walk(_analyzer(dwell_s=2.0), inside + [(3 + i / 5, 0.5, 0.3) for i in range(0, 15)] + [
        (6.2 + i / 5, 0.5, 0.8) for i in range(0, 15)
    ])  # fmt: skip
    assert len({e.episode for e in again}) == 2
