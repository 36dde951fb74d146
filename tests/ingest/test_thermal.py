"""Thermal analysis on simulated scenes: people never raise fire; a growing fire does, at its position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sharpeye.ingest.driver import Payload
from sharpeye.ingest.reading import Reading
from sharpeye.ingest.thermal import driver
from sharpeye.ingest.thermal.analysis import geometry
from sharpeye.ingest.thermal.config import ThermalConfig, ThermalRoi
from sharpeye.ingest.thermal.frame import decode_frame, encode_binary, encode_json
from sharpeye.simulators.thermal import ThermalSimulator

START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def camera(width: int, height: int, **roi: Any) -> ThermalConfig:
    rule = {"id": "all", "name": "全画面", "pre_alarm_c": 50, "alarm_c": 90, "filter_s": 2, "fire": {}} | roi
    return ThermalConfig.model_validate(
        {"id": "t1", "kind": "thermal", "name": "热像", "grid": "g", "width": width, "height": height,
         "frame_s": 1, "rois": [rule]}
    )  # fmt: skip


Script = dict[int, tuple[str, dict[str, Any]]]


def run(
    device: ThermalConfig, sim: ThermalSimulator, seconds: int, script: Script | None = None
) -> list[tuple[float, Reading]]:
    state = driver.new_state(device)
    out = []
    for second in range(seconds + 1):
        now = START + timedelta(seconds=second)
        if script and second in script:
            sim.act(*script[second], now)
        for channel, data in sim.tick(now):
            for reading in driver.decode(device, Payload(device.id, channel, data, now), state):
                out.append((float(second), reading))
    return out


@pytest.mark.parametrize(("width", "height"), [(32, 24), (160, 120)])
def test_people_at_body_temperature_raise_nothing(width: int, height: int) -> None:
    device = camera(width, height)
    sim = ThermalSimulator(device, seed=3, start=START)
    for i in range(4):
        sim.act("person", {"x": 0.1 + 0.2 * i, "y": 0.5, "vx": 0.02, "for_s": 120}, START)
    readings = run(device, sim, 120)
    maxima = [float(r.value or 0) for _, r in readings if r.kind == "thermal.roi"]
    assert 34 <= max(maxima) <= 37.5, "people are visible as the hottest thing"
    assert {r.value for _, r in readings if r.kind in ("thermal.fire", "thermal.level")} == {"normal"}


@pytest.mark.parametrize(("width", "height"), [(32, 24), (160, 120)])
def test_growing_fire_is_detected_at_its_position_and_ends_when_out(width: int, height: int) -> None:
    device = camera(width, height)
    sim = ThermalSimulator(device, seed=5, start=START)
    sim.act("person", {"x": 0.2, "y": 0.5, "for_s": 200}, START)
    script: Script = {10: ("fire_start", {"x": 0.7, "y": 0.3, "rate_c_per_s": 1.5}), 120: ("fire_out", {})}
    readings = run(device, sim, 160, script)
    fire = [(t, r) for t, r in readings if r.kind == "thermal.fire"]
    assert [r.value for _, r in fire] == ["normal", "alarm", "normal"]
    raised_at, raised = fire[1]
    # The hot spot starts ~8 °C above ambient and rises 1.5 °C/s: 60 °C is reached within about 40 s.
    assert 10 < raised_at < 60
    assert raised.attrs["x"] == pytest.approx(0.7, abs=1.5 / width + 0.01)
    assert raised.attrs["y"] == pytest.approx(0.3, abs=1.5 / height + 0.01)
    assert raised.attrs["rise_c_per_min"] >= 20
    assert fire[2][0] >= 120
    levels = [(t, r.value) for t, r in readings if r.kind == "thermal.level"]
    assert [v for _, v in levels] == ["normal", "pre_alarm", "alarm", "normal"]
    pre, alarm = levels[1][0], levels[2][0]
    assert raised_at <= alarm and pre < alarm


def test_slow_warming_without_fire_rule_rise_is_not_fire() -> None:
    """A roof heating in the sun (hot but slow) is a temperature level, not a fire."""
    device = camera(32, 24, pre_alarm_c=55, alarm_c=70, fire={"min_c": 60, "rise_c_per_min": 10, "window_s": 30})
    state = driver.new_state(device)
    values = []
    for minute in range(30):
        temps = np.full((24, 32), 20.0 + 2.0 * minute, np.float32)  # 2 °C per minute
        data = encode_binary(temps, minute, int((START + timedelta(minutes=minute)).timestamp() * 1000))
        values += driver.decode(device, Payload("t1", "frame", data, START), state)
    assert {r.value for r in values if r.kind == "thermal.fire"} == {"normal"}
    assert "alarm" in {r.value for r in values if r.kind == "thermal.level"}


def test_binary_and_json_encodings_decode_to_the_same_temperatures() -> None:
    rng = np.random.default_rng(1)
    temps = rng.uniform(-20, 400, (120, 160)).astype(np.float32)
    a = decode_frame(encode_binary(temps, 1, 1767578400000), START, (160, 120))
    b = decode_frame(encode_json(temps, 1, 1767578400000), START, (160, 120))
    assert np.abs(a.temps - temps).max() <= 0.0101  # default scale: 0.02 °C steps
    assert np.abs(b.temps - temps).max() <= 0.0051  # JSON: 0.01 °C
    assert a.ts == b.ts == START and a.seq == b.seq == 1


def test_rectangle_takes_pixels_whose_centres_are_inside() -> None:
    roi = ThermalRoi.model_validate({"id": "r", "name": "r", "rect": {"x0": 0.25, "y0": 0.5, "x1": 0.75, "y1": 1}})
    geo = geometry(roi, 8, 4)
    assert (geo.xs, geo.ys, geo.index) == (slice(2, 6), slice(2, 4), None)
    sliver = ThermalRoi.model_validate({"id": "s", "name": "s", "rect": {"x0": 0.5, "y0": 0.5, "x1": 0.51, "y1": 0.51}})
    tiny = geometry(sliver, 8, 4)
    assert (tiny.xs.stop - tiny.xs.start, tiny.ys.stop - tiny.ys.start) == (1, 1), "never an empty region"


def test_decode_without_state_starts_fresh_each_time() -> None:
    device = camera(32, 24, filter_s=0)
    hot = np.full((24, 32), 20.0, np.float32)
    hot[5, 5] = 95
    data = encode_binary(hot, 1, 1767578400000)
    first = driver.decode(device, Payload("t1", "frame", data, START))
    again = driver.decode(device, Payload("t1", "frame", data, START))
    assert [(r.kind, r.value) for r in first] == [(r.kind, r.value) for r in again]
    assert ("thermal.level", "alarm") in [(r.kind, r.value) for r in first]


@pytest.mark.parametrize(
    ("roi", "message"),
    [
        ({"rect": {"x0": 0.5, "y0": 0, "x1": 0.4, "y1": 1}}, "x0 < x1"),
        ({"rect": {"x0": 0, "y0": 0, "x1": 1, "y1": 1}, "polygon": [{"x": 0, "y": 0}] * 3}, "not both"),
        ({"pre_alarm_c": 90, "alarm_c": 80}, "must be below it"),
        ({"pre_alarm_c": 90, "alarm_c": None}, "needs alarm_c"),
    ],
)
def test_bad_regions_are_refused(roi: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        camera(32, 24, **roi)


def test_hot_object_reappearing_from_behind_a_person_is_not_fire() -> None:
    """A chimney at 85 °C hidden for 4 s by someone walking past: its max dips to body heat and comes back."""
    device = camera(32, 24, alarm_c=None, pre_alarm_c=None, fire={"min_c": 60, "rise_c_per_min": 10, "window_s": 30})
    state = driver.new_state(device)
    fire = []
    for second in range(60):
        temps = np.full((24, 32), 15.0, np.float32)
        temps[10, 10] = 36.0 if 20 <= second < 24 else 85.0
        data = encode_binary(temps, second, int((START + timedelta(seconds=second)).timestamp() * 1000))
        fire += [
            r.value
            for r in driver.decode(device, Payload("t1", "frame", data, START), state)
            if r.kind == "thermal.fire"
        ]
    assert fire == ["normal"]
