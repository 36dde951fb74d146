"""Water-level gauges: config checks and the simulator's scripted rise through the warning levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sharpeye.ingest.driver import Payload
from sharpeye.ingest.water_level import driver
from sharpeye.ingest.water_level.config import WaterLevelConfig
from sharpeye.simulators.water_level import WaterLevelSimulator

START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def gauge(**extra: Any) -> WaterLevelConfig:
    base = {"id": "w1", "kind": "water_level", "name": "水位计", "grid": "g", "warning_m": 12.5, "danger_m": 14.0}
    return WaterLevelConfig.model_validate(base | {"range_max_m": 30, "level_s": 10} | extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"warning_m": 40}, "within the sensor range"),
        ({"danger_m": 12.0}, "above warning_m"),
        ({"range_min_m": 30}, "range_min_m < range_max_m"),
    ],
)
def test_inconsistent_levels_are_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gauge(**extra)


def test_scripted_rise_passes_warning_then_danger() -> None:
    device = gauge()
    sim = WaterLevelSimulator(device, seed=1, start=START)
    sim.act("rise", {"to_m": 14.5, "over_s": 300}, START)
    stages = []
    for second in range(0, 400, 10):
        now = START + timedelta(seconds=second)
        for channel, data in sim.tick(now):
            for reading in driver.decode(device, Payload("w1", channel, data, now)):
                if reading.kind == "water_level.stage":
                    stages.append(reading.value)
    assert stages[0] == "normal" and stages[-1] == "danger"
    first = {s: stages.index(s) for s in ("normal", "warning", "danger")}
    assert first["normal"] < first["warning"] < first["danger"]
