"""Decoder of GB/T 28181 MANSCDP bodies into readings. Pure: bytes in, readings out, or a ``DecodeError``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sharpeye.config.device import DeviceConfig
from sharpeye.ingest.driver import Labels, Payload, Transport
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.manscdp import Manscdp, ManscdpError, parse_body
from sharpeye.ingest.reading import DecodeError, Reading

ALARM = "gb28181.alarm"
METHODS = ("MESSAGE", "NOTIFY")


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(text: str, zone: str) -> datetime | None:
    """A GB/T 28181 time (``2026-01-05T10:00:00[.SSS]``, local, no offset) as aware UTC, or None."""
    text = text.strip().replace(" ", "T")
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_zone(zone))
    return value.astimezone(UTC)


def alarm_reading(device: GbDeviceConfig, body: Manscdp, received: datetime) -> Reading:
    priority = body.int_field("alarmpriority")
    method = body.int_field("alarmmethod")
    if priority is None or not 1 <= priority <= 4:
        raise DecodeError("bad_alarm", f"AlarmPriority must be 1-4, got {body.fields.get('alarmpriority', '')!r}")
    if method is None or not 1 <= method <= 7:
        raise DecodeError("bad_alarm", f"AlarmMethod must be 1-7, got {body.fields.get('alarmmethod', '')!r}")
    attrs: dict[str, Any] = {
        "priority": priority,
        "method": method,
        "type": body.int_field("alarmtype"),
        "description": body.fields.get("alarmdescription", ""),
        "position": None,
        "sn": body.sn,
    }
    lon, lat = body.float_field("longitude"), body.float_field("latitude")
    if lon is not None and lat is not None and (lon, lat) != (0.0, 0.0):
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise DecodeError("bad_alarm", f"position out of range: {lon}, {lat}")
        attrs["position"] = {"longitude": lon, "latitude": lat}
    ts = local_time(body.fields.get("alarmtime", ""), device.timezone) or received
    channel = body.device_id if body.device_id != device.id else None
    return Reading(device_id=device.id, kind=ALARM, value="alarm", ts=ts, channel=channel, attrs=attrs)


def readings_of(device: GbDeviceConfig, body: Manscdp, received: datetime) -> list[Reading]:
    """Readings carried by a parsed body: keepalives and alarms; queries' responses carry none."""
    if body.root != "notify":
        return []
    cmd = body.cmd_type.lower()
    if cmd == "keepalive":
        status = body.fields.get("status", "OK").strip().upper()
        return [
            Reading(
                device_id=device.id,
                kind="device.heartbeat",
                value=True,
                ts=received,
                attrs={"status": status, "sn": body.sn},
            )
        ]
    if cmd == "alarm":
        return [alarm_reading(device, body, received)]
    return []


class GbDriver:
    kind = "gb28181"
    transport: Transport = "sip"
    config_model = GbDeviceConfig
    reading_kinds: Sequence[str] = (ALARM, "device.heartbeat", "device.online")
    labels: Mapping[str, Labels] = {
        "gb28181": {"zh": "国标设备", "en": "GB/T 28181 device"},
        ALARM: {"zh": "设备报警", "en": "device alarm"},
        "device.heartbeat": {"zh": "心跳", "en": "heartbeat"},
        "device.online": {"zh": "在线状态", "en": "online state"},
    }

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        assert isinstance(device, GbDeviceConfig)
        return [channel.id for channel in device.channels]

    def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
        """``payload.channel`` is the SIP method, ``payload.data`` the MANSCDP body."""
        assert isinstance(device, GbDeviceConfig)
        if payload.channel not in METHODS:
            raise DecodeError("unknown_channel", f"gb28181 bodies come in MESSAGE or NOTIFY, not {payload.channel!r}")
        try:
            body = parse_body(payload.data)
        except ManscdpError as exc:
            raise DecodeError(exc.reason, exc.detail) from None
        if body.root == "notify" and body.device_id != device.id and body.cmd_type.lower() == "keepalive":
            raise DecodeError("wrong_device", f"keepalive of {body.device_id} sent as {device.id}")
        return readings_of(device, body, payload.received)
