"""Config of a fence controller and its zones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from sharpeye.config.base import Identifier, Position, StrictModel
from sharpeye.config.device import DeviceConfig
from sharpeye.ingest.fence.arming import ArmingSchedule


class FenceZone(StrictModel):
    """One zone (防区) of a fence controller."""

    id: Identifier = Field(description="Zone id, unique within the controller (the payload's 'zone').")
    name: str = Field(min_length=1, description="Display name, e.g. '北侧围墙'.")
    type: Literal["perimeter", "tamper"] = Field(
        default="perimeter", description="'tamper' zones are 24-hour zones that alarm even when disarmed."
    )
    cameras: list[Identifier] = Field(default_factory=list, description="Cameras that watch this zone.")
    grid: Identifier | None = Field(default=None, description="Org unit of the zone (default: the device's).")
    position: Position | None = Field(default=None, description="Where: x/y on the site plan, lon/lat (WGS-84).")
    schedule: ArmingSchedule | None = Field(
        default=None,
        description="Weekly arming windows (布防时段); none: armed around the clock. Ignored for tamper zones.",
    )


class FenceConfig(DeviceConfig):
    """A fence controller publishing on ``sharpeye/fence/<id>/event``, ``.../heartbeat`` and ``.../arming``."""

    kind: Literal["fence"] = Field(description="Device kind.")
    zones: list[FenceZone] = Field(min_length=1, description="The controller's zones.")
