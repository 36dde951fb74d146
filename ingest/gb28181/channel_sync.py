"""GB/T 28181 catalog channels as cameras: each channel of a registered device (or of an NVR or lower platform)
becomes a camera in the inventory, placed where its device is, so live view, the map and alarms see it like any
camera. The catalog is the record: these cameras live in memory (inventory source ``gb28181``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sharpeye.config.base import Position
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.inventory import DeviceInventory


class CatalogChannel(Protocol):
    @property
    def device_id(self) -> str: ...

    @property
    def channel_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def media_url(self) -> str | None: ...

    @property
    def longitude(self) -> float | None: ...

    @property
    def latitude(self) -> float | None: ...


def channel_position(channel: CatalogChannel, fallback: Position | None) -> Position | None:
    """The channel's catalog longitude/latitude (WGS-84) with its device's plan place; a missing, (0, 0) or
    out-of-range position in the catalog leaves the device's."""
    lon, lat = channel.longitude, channel.latitude
    if lon is None or lat is None or (lon, lat) == (0.0, 0.0) or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return fallback
    x, y = (fallback.x, fallback.y) if fallback is not None else (None, None)
    return Position(x=x, y=y, lon=lon, lat=lat)


def sync_channels(channels: Iterable[CatalogChannel], inventory: DeviceInventory) -> int:
    """Put each catalog channel into the inventory as a camera (``gb28181:<device>/<channel>``, or the channel's
    configured media URL), unless an operator configured that channel as a camera of their own; returns how many
    were added or changed."""
    added = 0
    configured = {  # channels an operator configured as cameras (gb28181:<device>/<channel>, with analytics)
        str(d.url).split("?")[0].rpartition("/")[2]
        for d in inventory
        if isinstance(d, CameraConfig) and str(d.url).startswith("gb28181:") and inventory.source(d.id) != "gb28181"
    }
    for channel in channels:
        if channel.channel_id == channel.device_id or channel.channel_id in configured:
            continue
        device = inventory.get(channel.device_id)
        current = inventory.get(channel.channel_id)
        if device is None or (current is not None and inventory.source(channel.channel_id) != "gb28181"):
            continue
        url = channel.media_url or f"gb28181:{channel.device_id}/{channel.channel_id}"
        position = channel_position(channel, device.position)
        if (current is not None and getattr(current, "url", None) == url and current.name == channel.name
                and current.position == position):  # fmt: skip
            continue
        camera = CameraConfig(id=channel.channel_id, kind="camera", name=channel.name or channel.channel_id,
                              grid=device.grid, position=position, url=url, heartbeat_s=3600)  # fmt: skip
        inventory.put(camera, "gb28181")
        added += 1
    return added
