"""Config of a camera."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from config.device import DeviceConfig


class CameraConfig(DeviceConfig):
    """A camera whose stream the hub opens once and analyses at a reduced rate."""

    kind: Literal["camera"] = Field(description="Device kind.")
    url: str = Field(
        min_length=1,
        description="rtsp://, http(s):// or file path of the stream, or 'synthetic:<scene>' for the built-in "
        "generator.",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport.")
    analysis_fps: float = Field(default=5, gt=0, le=30, description="Frames analysed per second.")
    analysis_width: int = Field(default=320, ge=64, le=1920, description="Width of analysed frames, pixels.")
