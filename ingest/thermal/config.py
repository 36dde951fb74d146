"""Config of a thermal (radiometric) camera and its regions of interest."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from sharpeye.config.base import Identifier, StrictModel
from sharpeye.config.device import DeviceConfig


class Rect(StrictModel):
    """A rectangle in normalized frame coordinates (0,0 = top left, 1,1 = bottom right)."""

    x0: float = Field(ge=0, le=1, description="Left edge.")
    y0: float = Field(ge=0, le=1, description="Top edge.")
    x1: float = Field(ge=0, le=1, description="Right edge (> x0).")
    y1: float = Field(ge=0, le=1, description="Bottom edge (> y0).")

    @model_validator(mode="after")
    def _ordered(self) -> Rect:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError("need x0 < x1 and y0 < y1")
        return self


class Point(StrictModel):
    """A polygon vertex in normalized frame coordinates."""

    x: float = Field(ge=0, le=1, description="Horizontal position, 0 = left.")
    y: float = Field(ge=0, le=1, description="Vertical position, 0 = top.")


class FireRule(StrictModel):
    """Fire watch: a hot spot that is both hot and rising fast. People (about 37 °C) never qualify."""

    min_c: float = Field(default=60, gt=0, le=2000, description="The hottest point must be at least this hot.")
    rise_c_per_min: float = Field(
        default=10, gt=0, description="...and have risen at least this fast over the window (°C per minute)."
    )
    window_s: float = Field(default=30, gt=0, le=3600, description="Window over which the rise is measured, s.")
    confirm_c: float | None = Field(
        default=None, gt=0, description="A hottest point at least this hot is fire whatever its rise rate."
    )


class ThermalRoi(StrictModel):
    """A region of interest with two-level thresholds (预警/报警) on its max or average temperature."""

    id: Identifier = Field(description="Region id, unique within the camera (the reading's channel).")
    name: str = Field(min_length=1, description="Display name, e.g. '东坡林地'.")
    rect: Rect | None = Field(default=None, description="Rectangle; give rect or polygon, or neither (whole frame).")
    polygon: list[Point] | None = Field(default=None, min_length=3, max_length=64, description="Polygon vertices.")
    metric: Literal["max", "avg"] = Field(default="max", description="Which statistic the thresholds apply to.")
    pre_alarm_c: float | None = Field(default=None, description="Pre-alarm (预警) threshold, °C.")
    alarm_c: float | None = Field(default=None, description="Alarm (报警) threshold, °C; none: no level analysis.")
    tolerance_c: float = Field(
        default=2, ge=0, le=100, description="A level ends only when the metric falls this far below its threshold."
    )
    filter_s: float = Field(default=0, ge=0, le=3600, description="A new level must hold this long to count, s.")
    fire: FireRule | None = Field(default=None, description="Fire watch by hot spot and rate of rise.")
    cameras: list[Identifier] = Field(default_factory=list, description="Cameras linked to this region.")

    @model_validator(mode="after")
    def _consistent(self) -> ThermalRoi:
        if self.rect is not None and self.polygon is not None:
            raise ValueError("give rect or polygon, not both")
        if self.pre_alarm_c is not None and (self.alarm_c is None or self.pre_alarm_c >= self.alarm_c):
            raise ValueError("pre_alarm_c needs alarm_c and must be below it")
        return self


class ThermalConfig(DeviceConfig):
    """A thermal camera publishing radiometric frames (or its own rule results) over MQTT."""

    kind: Literal["thermal"] = Field(description="Device kind.")
    width: int = Field(default=160, ge=4, le=640, description="Sensor width in pixels; other frames are rejected.")
    height: int = Field(default=120, ge=4, le=512, description="Sensor height in pixels.")
    frame_s: float = Field(default=1, gt=0, le=3600, description="Interval between frames the camera sends, s.")
    rois: list[ThermalRoi] = Field(min_length=1, description="Regions of interest.")

    @model_validator(mode="after")
    def _unique_rois(self) -> ThermalConfig:
        ids = [roi.id for roi in self.rois]
        if len(ids) != len(set(ids)):
            raise ValueError("roi ids must be unique within a camera")
        return self
