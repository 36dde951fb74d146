"""Decoder of fence controller messages. Pure: bytes in, readings out, or a ``DecodeError``.

Channels (topic ``sharpeye/fence/<device_id>/<channel>``): ``event`` (alarm and restore of one cause),
``heartbeat`` (controller alive, armed state, battery, mains) and ``arming`` (a zone was armed or
disarmed, by command, schedule or keypad). Ordering and debounce are the alarm engine's: the decoder
passes the controller's ``seq`` through unchanged. See docs/devices/fence.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec
from sharpeye.config.device import DeviceConfig
from sharpeye.ingest.driver import Labels, Payload, Transport, decode_json, finite, sequence, timestamp
from sharpeye.ingest.fence.arming import armed_at
from sharpeye.ingest.fence.config import FenceConfig, FenceZone
from sharpeye.ingest.reading import DecodeError, Reading

if TYPE_CHECKING:
    pass

CAUSES = ("intrusion", "wire_cut", "short_circuit", "tamper", "power_loss", "low_battery", "comm_failure")
ZONE_CAUSES = frozenset({"intrusion", "wire_cut", "short_circuit", "tamper"})
MAX_PAYLOAD = 4096
CHANNELS = ("event", "heartbeat", "arming")

Cause = Literal["intrusion", "wire_cut", "short_circuit", "tamper", "power_loss", "low_battery", "comm_failure"]


class EventMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: datetime | int
    event: Literal["alarm", "restore"]
    cause: Cause
    zone: str | None = None
    armed: bool | None = None  # the controller's own view of the zone's arming, when it sends one


class HeartbeatMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: datetime | int
    armed: dict[str, bool] = msgspec.field(default_factory=dict)
    battery_v: float | None = None
    mains: bool | None = None


class ArmingMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: datetime | int
    zone: str
    armed: bool
    source: Literal["command", "schedule", "keypad"] = "command"
    command_id: str | None = None


_event = msgspec.json.Decoder(EventMessage)
_heartbeat = msgspec.json.Decoder(HeartbeatMessage)
_arming = msgspec.json.Decoder(ArmingMessage)


def _zone(device: FenceConfig, zone_id: str) -> FenceZone:
    for zone in device.zones:
        if zone.id == zone_id:
            return zone
    raise DecodeError("unknown_zone", f"device {device.id!r} has no zone {zone_id[:64]!r}")


def zone_armed(zone: FenceZone, when: datetime, reported: bool | None = None) -> bool:
    """Whether a zone counts as armed: tamper zones always; else the controller's report, else the schedule."""
    if zone.type == "tamper":
        return True
    if reported is not None:
        return reported
    return armed_at(zone.schedule, when)


class FenceDriver:
    kind = "fence"
    transport: Transport = "mqtt"
    config_model = FenceConfig
    reading_kinds: Sequence[str] = (*(f"fence.{cause}" for cause in CAUSES), "fence.arming")
    labels: Mapping[str, Labels] = {
        "fence": {"zh": "周界", "en": "Fence"},
        "fence.intrusion": {"zh": "入侵", "en": "intrusion"},
        "fence.wire_cut": {"zh": "剪线", "en": "wire cut"},
        "fence.short_circuit": {"zh": "短路", "en": "short circuit"},
        "fence.tamper": {"zh": "防拆", "en": "tamper"},
        "fence.power_loss": {"zh": "市电中断", "en": "mains lost"},
        "fence.low_battery": {"zh": "电池欠压", "en": "low battery"},
        "fence.comm_failure": {"zh": "通信故障", "en": "communication failure"},
        "fence.arming": {"zh": "布撤防", "en": "arming"},
    }
    fixtures = Path(__file__).with_name("fixtures")

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        assert isinstance(device, FenceConfig)
        return [zone.id for zone in device.zones]

    def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
        assert isinstance(device, FenceConfig)
        if payload.channel == "event":
            return [self._event(device, payload)]
        if payload.channel == "heartbeat":
            return [self._heartbeat(device, payload)]
        if payload.channel == "arming":
            return [self._arming(device, payload)]
        raise DecodeError("unknown_channel", f"fence devices publish {', '.join(CHANNELS)}, not {payload.channel!r}")

    def _event(self, device: FenceConfig, payload: Payload) -> Reading:
        msg = decode_json(_event, payload.data, MAX_PAYLOAD)
        ts = timestamp(msg.ts, payload.received)
        attrs: dict[str, object] = {}
        channel: str | None = None
        if msg.cause in ZONE_CAUSES:
            if msg.zone is None:
                raise DecodeError("wrong_shape", f"cause {msg.cause!r} needs a 'zone'")
            zone = _zone(device, msg.zone)
            channel = zone.id
            attrs["armed"] = zone_armed(zone, ts, msg.armed)
            attrs["zone_type"] = zone.type
        elif msg.zone is not None:
            channel = _zone(device, msg.zone).id
        return Reading(
            device_id=device.id,
            kind=f"fence.{msg.cause}",
            value=msg.event,
            ts=ts,
            seq=sequence(msg.seq),
            channel=channel,
            attrs=attrs,
        )

    def _heartbeat(self, device: FenceConfig, payload: Payload) -> Reading:
        msg = decode_json(_heartbeat, payload.data, MAX_PAYLOAD)
        ts = timestamp(msg.ts, payload.received)
        armed: dict[str, bool] = {}
        for zone_id, reported in msg.armed.items():
            zone = _zone(device, zone_id)
            armed[zone.id] = zone_armed(zone, ts, reported)
        attrs: dict[str, object] = {"armed": armed}
        if msg.battery_v is not None:
            attrs["battery_v"] = finite(msg.battery_v, "battery_v", 0, 100)
        if msg.mains is not None:
            attrs["mains"] = msg.mains
        return Reading(
            device_id=device.id, kind="device.heartbeat", value=True, ts=ts, seq=sequence(msg.seq), attrs=attrs
        )

    def _arming(self, device: FenceConfig, payload: Payload) -> Reading:
        msg = decode_json(_arming, payload.data, MAX_PAYLOAD)
        zone = _zone(device, msg.zone)
        attrs: dict[str, object] = {"source": msg.source}
        if msg.command_id is not None:
            attrs["command_id"] = msg.command_id[:64]
        if zone.type == "tamper":
            attrs["ignored"] = "tamper zones are armed around the clock"
        return Reading(
            device_id=device.id,
            kind="fence.arming",
            value="armed" if msg.armed else "disarmed",
            ts=timestamp(msg.ts, payload.received),
            seq=sequence(msg.seq),
            channel=zone.id,
            attrs=attrs,
        )
