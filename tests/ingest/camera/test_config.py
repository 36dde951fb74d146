"""Camera config: shapes are checked with a reason; schedules arm by local time; the registry knows the fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sharpeye.ingest.camera import geometry
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.registry import installed


def camera(**extra: Any) -> dict[str, Any]:
    return {"id": "cam1", "kind": "camera", "name": "门口", "grid": "g1", "url": "rtsp://127.0.0.1/x", **extra}


def test_valid_camera_with_shapes() -> None:
    cfg = CameraConfig.model_validate(
        camera(
            zones=[{"id": "z1", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "loitering_s": 30}],
            tripwires=[{"id": "l1", "a": [0.1, 0.9], "b": [0.9, 0.9], "direction": "a_to_b"}],
            masks=[{"id": "tree", "polygon": [[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]]}],
        )
    )
    assert cfg.zones[0].loitering_s == 30
    assert cfg.tripwires[0].direction == "a_to_b"
    assert installed().get("camera").channels(cfg) == ["z1", "l1"]


def test_self_intersecting_zone_is_rejected_with_reason() -> None:
    bow_tie = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]
    with pytest.raises(ValidationError, match="self-intersecting: edge 0-1 crosses edge 2-3"):
        CameraConfig.model_validate(camera(zones=[{"id": "z1", "polygon": bow_tie}]))


def test_zone_outside_frame_is_rejected() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 1") as info:
        CameraConfig.model_validate(camera(zones=[{"id": "z1", "polygon": [[0.1, 0.1], [1.3, 0.1], [0.5, 0.6]]}]))
    assert info.value.errors()[0]["loc"][:4] == ("zones", 0, "polygon", 1)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.2, 0.2]]}]}, "at least 3 points"),
        ({"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}]}, "no area"),
        ({"tripwires": [{"id": "l", "a": [0.5, 0.5], "b": [0.5, 0.501]}]}, "same point"),
        (
            {
                "zones": [{"id": "x", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}],
                "tripwires": [{"id": "x", "a": [0.1, 0.1], "b": [0.9, 0.9]}],
            },
            "unique",
        ),
        (
            {"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "min_size": 0.5, "max_size": 0.2}]},
            "max_size must be greater",
        ),
        ({"classifier": {"type": "hog"}}, "Extra inputs are not permitted"),
        ({"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "objects": "dog"}]}, "person"),
        ({"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "min_score": 0}]}, "min_score"),
        ({"unknown_key": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_shapes_are_rejected(extra: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        CameraConfig.model_validate(camera(**extra))


def test_schedule_arms_in_local_time() -> None:
    cfg = CameraConfig.model_validate(
        camera(
            zones=[
                {
                    "id": "z1",
                    "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]],
                    "schedule": {"windows": [{"days": [0, 1, 2, 3, 4], "start": "18:00", "end": "24:00"}]},
                }
            ]
        )
    )
    schedule = cfg.channel_schedule("z1")
    assert schedule is not None
    # Monday 2026-01-05 11:00 UTC is 19:00 in Shanghai: armed; 09:00 UTC is 17:00: not armed.
    assert schedule.armed(datetime(2026, 1, 5, 11, 0, tzinfo=UTC))
    assert not schedule.armed(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    # Saturday evening: not a listed day.
    assert not schedule.armed(datetime(2026, 1, 10, 11, 0, tzinfo=UTC))
    with pytest.raises(ValidationError, match="must be after start"):
        CameraConfig.model_validate(
            camera(
                zones=[
                    {
                        "id": "z",
                        "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]],
                        "schedule": {"windows": [{"start": "20:00", "end": "08:00"}]},
                    }
                ]
            )
        )


def test_registry_site_model_accepts_camera_zones() -> None:
    adapter = installed().device_adapter()
    dev = adapter.validate_python(camera(zones=[{"id": "z1", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}]))
    assert isinstance(dev, CameraConfig)
    assert dev.zones[0].id == "z1"


def test_geometry() -> None:
    square = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
    assert geometry.contains(square, (0.5, 0.5))
    assert not geometry.contains(square, (0.9, 0.5))
    assert geometry.self_intersection(square) is None
    assert geometry.segments_intersect((0, 0), (1, 1), (0, 1), (1, 0))
    assert not geometry.segments_intersect((0, 0), (1, 0), (0, 1), (1, 1))
    # Right-hand side of a left-to-right line (y down) is below it.
    assert geometry.cross((0, 0.5), (1, 0.5), (0.5, 0.9)) > 0


def test_objects_name_classes_and_need_the_detector() -> None:
    zone = {"id": "z", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}
    one = CameraConfig.model_validate(camera(zones=[{**zone, "objects": "person"}]))
    assert one.zones[0].objects == ["person"] and one.needs_detector
    several = CameraConfig.model_validate(camera(zones=[{**zone, "objects": ["car", "truck"], "min_score": 0.4}]))
    assert several.zones[0].objects == ["car", "truck"] and several.zones[0].min_score == 0.4
    assert not CameraConfig.model_validate(camera(zones=[zone])).needs_detector
