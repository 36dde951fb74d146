"""Catalog channels keep their longitude/latitude (WGS-84) on the map; a missing, (0, 0) or out-of-range position
in the catalog leaves their device's place."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from sharpeye.config.base import Position
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.gb28181.channel_sync import channel_position, sync_channels
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys

NVR = "34020000001180000101"  # the demo's GB/T 28181 NVR, at x 0.55, y 0.45 on the plan


@dataclass
class Channel:
    device_id: str
    channel_id: str
    name: str
    longitude: float | None = None
    latitude: float | None = None
    media_url: str | None = None


def test_channel_position_takes_valid_catalog_coordinates() -> None:
    plan = Position(x=0.55, y=0.45)
    placed = channel_position(Channel(NVR, "c1", "a", 120.0061, 30.2535), plan)
    assert placed == Position(x=0.55, y=0.45, lon=120.0061, lat=30.2535)
    assert channel_position(Channel(NVR, "c1", "a", 120.0061, 30.2535), None) == Position(lon=120.0061, lat=30.2535)
    for lon, lat in ((None, None), (0.0, 0.0), (181.0, 30.0), (120.0, 95.0), (float("nan"), 30.0)):
        assert channel_position(Channel(NVR, "c1", "a", lon, lat), plan) is plan


async def test_synced_channel_cameras_carry_lon_lat(redis_client: aioredis.Redis) -> None:
    inventory = DeviceInventory(load_file(demo_path(), installed()), installed(), redis_client, Keys("chanpos"))
    channels = [Channel(NVR, "34020000001310000001", "北门", 120.0061, 30.2535),
                Channel(NVR, "34020000001310000002", "南门")]  # fmt: skip
    assert sync_channels(channels, inventory) == 2
    north, south = inventory.get(channels[0].channel_id), inventory.get(channels[1].channel_id)
    assert north is not None and north.position == Position(x=0.55, y=0.45, lon=120.0061, lat=30.2535)
    assert south is not None and south.position == Position(x=0.55, y=0.45)
    assert sync_channels(channels, inventory) == 0  # unchanged: nothing replaced
    moved = [Channel(NVR, channels[0].channel_id, "北门", 120.0070, 30.2540)]
    assert sync_channels(moved, inventory) == 1
    north = inventory.get(channels[0].channel_id)
    assert north is not None and north.position is not None and north.position.lon == 120.0070
