"""Camera kind. Readings come from the video analytics, not from message payloads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sharpeye.config.device import DeviceConfig
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.driver import Labels, Payload, Transport
from sharpeye.ingest.reading import DecodeError, Reading


class CameraDriver:
    kind = "camera"
    transport: Transport = "video"
    config_model = CameraConfig
    reading_kinds: Sequence[str] = (
        "video.intrusion",
        "video.tripwire",
        "video.loitering",
        "video.loss",
        "video.tamper",
    )
    labels: Mapping[str, Labels] = {
        "camera": {"zh": "摄像机", "en": "Camera"},
        "video.intrusion": {"zh": "区域入侵", "en": "intrusion"},
        "video.tripwire": {"zh": "越线", "en": "tripwire crossed"},
        "video.loitering": {"zh": "徘徊", "en": "loitering"},
        "video.loss": {"zh": "视频丢失", "en": "video loss"},
        "video.tamper": {"zh": "遮挡/移位", "en": "tampering"},
    }

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        if not isinstance(device, CameraConfig):
            return []
        return [z.id for z in device.zones] + [t.id for t in device.tripwires]

    def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
        raise DecodeError("unsupported", "camera readings come from the hub's own video analytics")
