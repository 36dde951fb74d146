"""Analytics on rendered frames (no codec): each scenario raises exactly its expected alarms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sharpeye.ingest.camera import analyzer as analyzer_module
from sharpeye.ingest.camera.analyzer import Analyzer
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.simulators.camera.grader import Grader, offline
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.scene import Scene


@pytest.mark.parametrize("name", ["intrusion", "loitering", "tamper", "school-gate", "reservoir", "hillside"])
def test_scenario_raises_exactly_expected_alarms(name: str) -> None:
    scenario = builtin(name)
    assert scenario.expected, "a scenario without expectations proves nothing"
    grade = Grader().grade(scenario.expected, offline(scenario))
    assert grade.exact, f"missed {grade.missed}, extra {grade.extra}"
    for exp, obs in grade.matched:
        assert obs.t - exp.at_s <= exp.within_s


def test_one_person_crossing_is_one_event_with_one_object_id() -> None:
    scenario = builtin("intrusion")
    scene = Scene(scenario)
    analyzer = Analyzer(scenario.camera_config())
    ids = set()
    events = []
    for n in range(0, int(scenario.duration_s * scenario.fps), 2):
        t = n / scenario.fps
        for e in analyzer.process(cv2.resize(scene.frame(t), (320, 180)), t):
            events.append(e)
            ids.add(e.object_id)
    crossings = [e for e in events if e.kind == "video.tripwire"]
    assert len(crossings) == 1
    assert crossings[0].direction == "b_to_a"
    intrusion_ids = {e.object_id for e in events if e.kind == "video.intrusion"}
    assert intrusion_ids == {crossings[0].object_id}


def test_direction_filter_and_mask() -> None:
    scenario = builtin("intrusion")
    base = scenario.camera
    # The same walk against a line that only alarms A→B: no crossing.
    reversed_line = {**base, "tripwires": [{**base["tripwires"][0], "direction": "a_to_b"}]}
    observed = offline(scenario.model_copy(update={"camera": reversed_line}))
    assert [o for o in observed if o.kind == "video.tripwire"] == []
    # A mask over the whole lower half hides the person from the zone.
    masked = {**base, "masks": [{"id": "m", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}]}
    observed = offline(scenario.model_copy(update={"camera": masked}))
    assert [o for o in observed if o.kind in ("video.intrusion", "video.tripwire")] == []


def test_size_filter_drops_small_objects() -> None:
    scenario = builtin("intrusion")
    zone = {**scenario.camera["zones"][0], "min_size": 0.4}
    line = {**scenario.camera["tripwires"][0], "min_size": 0.4}
    observed = offline(scenario.model_copy(update={"camera": {"zones": [zone], "tripwires": [line]}}))
    assert [o for o in observed if o.kind != "video.tamper"] == []


def test_resolution_change_resets_and_keeps_detecting() -> None:
    scenario = builtin("intrusion")
    scene = Scene(scenario)
    analyzer = Analyzer(scenario.camera_config())
    kinds = []
    for n in range(0, int(scenario.duration_s * scenario.fps), 2):
        t = n / scenario.fps
        size = (320, 180) if t < 3 else (256, 144)  # the camera switched its stream profile
        kinds += [e.kind for e in analyzer.process(cv2.resize(scene.frame(t), size), t)]
    assert analyzer.resets == 1
    assert "video.intrusion" in kinds and "video.tripwire" in kinds


def test_the_background_model_feeds_only_tiles_that_change_and_finds_the_same_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MOG2 on tiles fed only when they change: on a still scene with one person crossing, most tiles are not fed,
    and the alarms are those of one MOG2 over the whole frame fed every frame."""
    scenario = builtin("intrusion")
    scene = Scene(scenario)
    frames = [
        (n / scenario.fps, cv2.resize(scene.frame(n / scenario.fps), (320, 180)))
        for n in range(0, int(scenario.duration_s * scenario.fps), 2)
    ]

    def run() -> tuple[list[tuple[str, str | None, float]], Analyzer]:
        analyzer = Analyzer(scenario.camera_config())
        events = [(e.kind, e.channel, e.t) for t, frame in frames for e in analyzer.process(frame, t)]
        return events, analyzer

    tiled, analyzer = run()
    assert analyzer.tiles_seen == len(frames) * analyzer_module.TILE_ROWS * analyzer_module.TILE_COLS
    assert analyzer.tiles_fed < 0.4 * analyzer.tiles_seen, analyzer.tiles_fed / analyzer.tiles_seen
    monkeypatch.setattr(analyzer_module, "TILE_ROWS", 1)
    monkeypatch.setattr(analyzer_module, "TILE_COLS", 1)
    monkeypatch.setattr(analyzer_module, "REFRESH_FRAMES", 1)
    whole, analyzer = run()
    assert analyzer.tiles_fed == analyzer.tiles_seen == len(frames)
    assert [e[:2] for e in tiled] == [e[:2] for e in whole] and tiled
    assert max(abs(a[2] - b[2]) for a, b in zip(tiled, whole, strict=True)) <= 0.2


def test_a_still_tile_is_fed_at_the_refresh_rate() -> None:
    """A picture that does not change: after the first frames every tile is fed once in REFRESH_FRAMES."""
    analyzer = Analyzer(builtin("intrusion").camera_config())
    frame = cv2.resize(Scene(builtin("intrusion")).frame(0.0), (320, 180))
    tiles = analyzer_module.TILE_ROWS * analyzer_module.TILE_COLS
    for i in range(analyzer_module.WARM_FRAMES + 3 * analyzer_module.REFRESH_FRAMES):
        analyzer.process(frame, i / 5)
    assert analyzer.tiles_fed == (analyzer_module.WARM_FRAMES + 3) * tiles


def _walk_together_then_apart(t: float) -> np.ndarray:
    """Two dark figures walking right side by side (one blob), parting at 4 s: one up, one down."""
    rng = np.random.default_rng(int(t * 10))
    frame = np.full((240, 320, 3), 150, np.uint8)
    frame += rng.integers(0, 4, frame.shape, dtype=np.uint8)
    if t >= 2.0:
        x = int(20 + (t - 2.0) * 30)
        apart = max(0.0, t - 4.0) * 25
        for dy in (-apart, apart):
            y = int(100 + dy)
            cv2.rectangle(frame, (x, y), (x + 12, y + 36), (40, 40, 40), -1)
            x += 13  # side by side: one blob until they part
    return frame


@pytest.mark.parametrize("pad", [analyzer_module.SPLIT_PAD, -10.0])
def test_a_blob_splitting_off_a_track_in_alarm_continues_its_stay(monkeypatch: pytest.MonkeyPatch, pad: float) -> None:
    monkeypatch.setattr(analyzer_module, "SPLIT_PAD", pad)  # -10: never (the check that the test sees a split)
    whole = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    config = CameraConfig.model_validate(
        {"kind": "camera", "id": "c", "name": "c", "grid": "g1", "url": "x", "repeat_s": 1.0,
         "zones": [{"id": "in", "polygon": whole, "dwell_s": 0.0},
                   {"id": "stay", "polygon": whole, "intrusion": False, "loitering_s": 1.0}]}
    )  # fmt: skip
    analyzer = Analyzer(config)
    events = [e for n in range(45) for e in analyzer.process(_walk_together_then_apart(n / 5), n / 5)]
    intrusions = [e for e in events if e.kind == "video.intrusion"]
    loiterings = {e.episode for e in events if e.kind == "video.loitering"}
    objects = {e.object_id for e in intrusions}
    assert len(objects) == 2, intrusions  # the two parted: two tracks, both in the zone
    episodes = {e.episode for e in intrusions if e.repeat == 0}
    if pad > 0:
        # One stay: the second figure's readings repeat the first's episode, no second alarm (nor snapshot).
        assert len(episodes) == 1 and {e.episode for e in intrusions} == episodes
    else:
        assert len(episodes) == 2
    # Loitering is each track's own time, never handed on.
    assert len(loiterings) == 2
