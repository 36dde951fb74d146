"""Config of a water-level gauge (水位计) on a reservoir or river."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from sharpeye.config.base import Identifier
from sharpeye.config.device import DeviceConfig


class WaterLevelConfig(DeviceConfig):
    """A gauge publishing ``sharpeye/water_level/<id>/level`` and ``.../heartbeat``."""

    kind: Literal["water_level"] = Field(description="Device kind.")
    datum: str = Field(default="local", max_length=40, description="Height datum of the levels (e.g. '1985国家高程').")
    range_min_m: float = Field(default=0, description="Lowest level the sensor can measure, m.")
    range_max_m: float = Field(default=100, description="Highest level the sensor can measure, m.")
    warning_m: float = Field(description="Warning level (警戒水位), m.")
    danger_m: float | None = Field(default=None, description="Guaranteed/danger level (保证水位), m; above warning.")
    level_s: float = Field(default=60, gt=0, le=86400, description="Interval between level reports, s.")
    cameras: list[Identifier] = Field(default_factory=list, description="Cameras that watch the gauge.")

    @model_validator(mode="after")
    def _ordered(self) -> WaterLevelConfig:
        if not self.range_min_m < self.range_max_m:
            raise ValueError("need range_min_m < range_max_m")
        if not self.range_min_m <= self.warning_m <= self.range_max_m:
            raise ValueError("warning_m must lie within the sensor range")
        if self.danger_m is not None and not self.warning_m < self.danger_m <= self.range_max_m:
            raise ValueError("danger_m must lie above warning_m and within the sensor range")
        return self
