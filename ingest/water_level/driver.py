"""Decoder of water-level gauge messages: the worked example of docs/integrators.md.

Channels (topic ``sharpeye/water_level/<device_id>/<channel>``): ``level`` (a measurement) and
``heartbeat``. A level message yields ``water_level.level`` (value in metres) and ``water_level.stage``
(``normal``/``warning``/``danger`` against the configured levels). See docs/devices/water_level.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from sharpeye.config.device import DeviceConfig
from sharpeye.ingest.driver import Labels, Payload, Transport, decode_json, finite, sequence, timestamp
from sharpeye.ingest.reading import DecodeError, Reading
from sharpeye.ingest.water_level.config import WaterLevelConfig

if TYPE_CHECKING:
    pass

MAX_PAYLOAD = 1024
CHANNELS = ("level", "heartbeat")


class LevelMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: datetime | int
    level_m: float
    battery_v: float | None = None


class HeartbeatMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: datetime | int
    battery_v: float | None = None


_level = msgspec.json.Decoder(LevelMessage)
_heartbeat = msgspec.json.Decoder(HeartbeatMessage)


def stage(device: WaterLevelConfig, level_m: float) -> str:
    """``danger`` at or above danger_m, ``warning`` at or above warning_m, else ``normal``."""
    if device.danger_m is not None and level_m >= device.danger_m:
        return "danger"
    if level_m >= device.warning_m:
        return "warning"
    return "normal"


class WaterLevelDriver:
    kind = "water_level"
    transport: Transport = "mqtt"
    config_model = WaterLevelConfig
    reading_kinds: Sequence[str] = ("water_level.level", "water_level.stage")
    labels: Mapping[str, Labels] = {
        "water_level": {"zh": "水位计", "en": "Water level"},
        "water_level.level": {"zh": "水位", "en": "water level"},
        "water_level.stage": {"zh": "水情等级", "en": "flood stage"},
    }
    fixtures = Path(__file__).with_name("fixtures")

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        return []

    def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
        assert isinstance(device, WaterLevelConfig)
        if payload.channel == "level":
            msg = decode_json(_level, payload.data, MAX_PAYLOAD)
            level = finite(msg.level_m, "level_m", device.range_min_m, device.range_max_m)
            ts, seq = timestamp(msg.ts, payload.received), sequence(msg.seq)
            attrs: dict[str, object] = {"datum": device.datum}
            if msg.battery_v is not None:
                attrs["battery_v"] = finite(msg.battery_v, "battery_v", 0, 100)
            level_stage = stage(device, level)
            return [
                Reading(
                    device_id=device.id,
                    kind="water_level.level",
                    value=level,
                    ts=ts,
                    seq=seq,
                    attrs={**attrs, "stage": level_stage},
                ),
                Reading(
                    device_id=device.id,
                    kind="water_level.stage",
                    value=level_stage,
                    ts=ts,
                    seq=seq,
                    attrs={"level_m": level},
                ),
            ]
        if payload.channel == "heartbeat":
            hb = decode_json(_heartbeat, payload.data, MAX_PAYLOAD)
            hb_attrs: dict[str, object] = {}
            if hb.battery_v is not None:
                hb_attrs["battery_v"] = finite(hb.battery_v, "battery_v", 0, 100)
            return [
                Reading(
                    device_id=device.id,
                    kind="device.heartbeat",
                    value=True,
                    ts=timestamp(hb.ts, payload.received),
                    seq=sequence(hb.seq),
                    attrs=hb_attrs,
                )
            ]
        raise DecodeError(
            "unknown_channel", f"water_level devices publish {', '.join(CHANNELS)}, not {payload.channel!r}"
        )
