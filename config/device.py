"""Fields every device has, whatever its kind. Each kind subclasses ``DeviceConfig``."""

from __future__ import annotations

from pydantic import Field
from sharpeye.config.base import Identifier, Position, StrictModel


class DeviceConfig(StrictModel):
    """A device instance. Kinds add their own fields and narrow ``kind`` to a literal."""

    id: Identifier = Field(description="Stable device id (GB/T 28181 devices keep their 20-digit code).")
    kind: str = Field(description="Device kind key, as registered in the 'sharpeye.drivers' entry points.")
    name: str = Field(min_length=1, max_length=100, description="Display name shown to operators.")
    grid: Identifier = Field(description="Id of the org unit (normally a grid) the device is placed in.")
    position: Position | None = Field(default=None, description="Where: x/y on the site plan, lon/lat (WGS-84).")
    heartbeat_s: float = Field(
        default=60, gt=0, le=86400, description="Expected interval between messages or heartbeats, seconds."
    )
    offline_after: int = Field(
        default=3, ge=1, le=100, description="Missed heartbeat intervals after which the device is offline."
    )
    enabled: bool = Field(default=True, description="Disabled devices are kept in config but not run.")
