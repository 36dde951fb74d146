"""Decoder of fence controller messages. Pure: bytes in, readings out, or a ``DecodeError``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec

from config.device import DeviceConfig
from ingest.driver import Payload, Transport
from ingest.fence.config import FenceConfig
from ingest.reading import DecodeError, Reading

CAUSES = ("intrusion", "wire_cut", "short_circuit", "tamper", "power_loss", "low_battery", "comm_failure")
ZONE_CAUSES = frozenset({"intrusion", "wire_cut", "short_circuit", "tamper"})
MAX_PAYLOAD = 4096

Cause = Literal["intrusion", "wire_cut", "short_circuit", "tamper", "power_loss", "low_battery", "comm_failure"]


class EventMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: datetime | int
    event: Literal["alarm", "restore"]
    cause: Cause
    zone: str | None = None


class HeartbeatMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: datetime | int
    armed: dict[str, bool] = msgspec.field(default_factory=dict)
    battery_v: float | None = None
    mains: bool | None = None


_event = msgspec.json.Decoder(EventMessage)
_heartbeat = msgspec.json.Decoder(HeartbeatMessage)


def _timestamp(value: datetime | int) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise DecodeError("bad_timestamp", "timestamp has no time zone")
        return value.astimezone(UTC)
    if not 0 <= value < 2**42:
        raise DecodeError("bad_timestamp", f"epoch milliseconds out of range: {value}")
    return datetime.fromtimestamp(value / 1000, UTC)


class FenceDriver:
    kind = "fence"
    transport: Transport = "mqtt"
    config_model = FenceConfig
    reading_kinds: Sequence[str] = tuple(f"fence.{cause}" for cause in CAUSES)

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        assert isinstance(device, FenceConfig)
        return [zone.id for zone in device.zones]

    def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
        assert isinstance(device, FenceConfig)
        if len(payload.data) > MAX_PAYLOAD:
            raise DecodeError("oversize", f"{len(payload.data)} bytes > {MAX_PAYLOAD}")
        if payload.channel == "event":
            return [self._event(device, payload.data)]
        if payload.channel == "heartbeat":
            return self._heartbeat(device, payload.data)
        raise DecodeError("unknown_channel", f"fence devices publish 'event' or 'heartbeat', not {payload.channel!r}")

    def _event(self, device: FenceConfig, data: bytes) -> Reading:
        try:
            msg = _event.decode(data)
        except msgspec.DecodeError as exc:
            raise DecodeError("bad_payload", str(exc)) from None
        if msg.seq < 0:
            raise DecodeError("bad_payload", "seq must be >= 0")
        channel: str | None = None
        if msg.cause in ZONE_CAUSES:
            if msg.zone is None:
                raise DecodeError("bad_payload", f"cause {msg.cause!r} needs a 'zone'")
            if msg.zone not in {zone.id for zone in device.zones}:
                raise DecodeError("unknown_zone", f"device {device.id!r} has no zone {msg.zone!r}")
            channel = msg.zone
        return Reading(
            device_id=device.id,
            kind=f"fence.{msg.cause}",
            value=msg.event,
            ts=_timestamp(msg.ts),
            seq=msg.seq,
            channel=channel,
        )

    def _heartbeat(self, device: FenceConfig, data: bytes) -> list[Reading]:
        try:
            msg = _heartbeat.decode(data)
        except msgspec.DecodeError as exc:
            raise DecodeError("bad_payload", str(exc)) from None
        attrs: dict[str, object] = {"armed": msg.armed}
        if msg.battery_v is not None:
            attrs["battery_v"] = msg.battery_v
        if msg.mains is not None:
            attrs["mains"] = msg.mains
        return [
            Reading(
                device_id=device.id,
                kind="device.heartbeat",
                value=True,
                ts=_timestamp(msg.ts),
                seq=msg.seq,
                attrs=attrs,
            )
        ]
