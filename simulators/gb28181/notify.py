"""What a simulated GB/T 28181 device NOTIFYs to a platform that subscribed: mobile positions along a route, catalog
changes, alarms. Bodies only; the fleet sends them (``DeviceFleet.notify``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sharpeye.ingest.gb28181.manscdp import Node, build


def local_now(zone: str = "Asia/Shanghai") -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(slots=True)
class Route:
    """A patrol car (or body camera) going round a circle: ``step()`` gives its next (lon, lat, speed, direction)."""

    center: tuple[float, float] = (117.2272, 31.8206)
    radius_deg: float = 0.002
    step_deg: float = 15.0
    angle: float = 0.0
    sent: list[tuple[float, float]] = field(default_factory=list)

    def step(self) -> tuple[float, float, float, float]:
        self.angle = (self.angle + self.step_deg) % 360
        rad = math.radians(self.angle)
        lon = round(self.center[0] + self.radius_deg * math.cos(rad), 6)
        lat = round(self.center[1] + self.radius_deg * math.sin(rad), 6)
        self.sent.append((lon, lat))
        return lon, lat, 30.0, (self.angle + 90) % 360


def mobile_position(sn: int, device_id: str, lon: float, lat: float, speed: float, direction: float,
                    when: str | None = None, charset: str = "GB2312") -> bytes:  # fmt: skip
    fields: list[Node] = [("Time", when or local_now()), ("Longitude", lon), ("Latitude", lat), ("Speed", speed),
                          ("Direction", direction), ("Altitude", 20)]  # fmt: skip
    return build("Notify", "MobilePosition", sn, device_id, fields, charset=charset)


def catalog_change(sn: int, device_id: str, items: list[tuple[str, str, str]], charset: str = "GB2312") -> bytes:
    """A Catalog NOTIFY: ``items`` of (channel id, name, event ADD/DEL/ON/OFF/UPDATE)."""
    rows: list[list[Node]] = [
        [("DeviceID", cid), ("Name", name), ("Manufacturer", "模拟厂商"), ("Model", "SIM-IPC"), ("Owner", "Owner"),
         ("CivilCode", cid[:6]), ("Address", name), ("Parental", 0), ("ParentID", device_id), ("SafetyWay", 0),
         ("RegisterWay", 1), ("Secrecy", 0), ("Status", "OFF" if event == "OFF" else "ON"), ("Event", event)]
        for cid, name, event in items
    ]  # fmt: skip
    return build("Notify", "Catalog", sn, device_id, [("SumNum", len(rows))], charset=charset,
                 device_list=("DeviceList", rows))  # fmt: skip


def device_time(offset_s: float, zone: str = "Asia/Shanghai") -> str:
    """The device's clock (``DeviceTime``): now, wrong by ``offset_s``."""
    local = (datetime.now(UTC) + timedelta(seconds=offset_s)).astimezone(ZoneInfo(zone))
    return local.strftime("%Y-%m-%dT%H:%M:%S")


def sync_offset(date: str, zone: str = "Asia/Shanghai") -> float:
    """The clock error left after setting the clock from a REGISTER answer's ``Date`` (its milliseconds kept):
    about zero, as a device that takes the platform's time."""
    try:
        told = datetime.fromisoformat(date.strip()).replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        return 0.0
    return (told - datetime.now(UTC)).total_seconds()
