"""Simulated pulse fence controller (脉冲电子围栏主机): heartbeats, alarms and restores, arming."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sharpeye.ingest.driver import Message
from sharpeye.ingest.fence.arming import armed_at
from sharpeye.ingest.fence.command import decode_command
from sharpeye.ingest.fence.config import FenceConfig
from sharpeye.ingest.fence.driver import CAUSES, ZONE_CAUSES
from sharpeye.simulators.clock import epoch_ms, following

ACTIONS = ("alarm", "restore", "arm", "disarm", "power_loss", "power_restore", "battery")


class FenceSimulator:
    """One controller. ``tick`` sends heartbeats every ``heartbeat_s``; scenario actions send events."""

    def __init__(self, device: FenceConfig, *, seed: int, start: datetime) -> None:
        self.device = device
        self._rng = random.Random(seed)
        self._seq = self._rng.randrange(0, 1000)
        self._next_heartbeat = start + timedelta(seconds=self._rng.uniform(0, min(device.heartbeat_s, 5)))
        self._battery_v = round(13.2 + self._rng.uniform(-0.3, 0.3), 2)
        self._mains = True
        self._armed: dict[str, bool] = {}  # overrides by command
        self._zones = {zone.id: zone for zone in device.zones}
        self._reported_armed = self.armed(start)

    @property
    def device_id(self) -> str:
        return self.device.id

    def next_tick(self) -> datetime:
        return self._next_heartbeat

    def actions(self) -> Sequence[str]:
        return ACTIONS

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def armed(self, now: datetime) -> dict[str, bool]:
        """The controller's view: command overrides, else the schedule; tamper zones always armed."""
        out = {}
        for zone in self.device.zones:
            if zone.type == "tamper":
                out[zone.id] = True
            else:
                out[zone.id] = self._armed.get(zone.id, armed_at(zone.schedule, now))
        return out

    def tick(self, now: datetime) -> list[Message]:
        if now < self._next_heartbeat:
            return []
        self._next_heartbeat = following(self._next_heartbeat, self.device.heartbeat_s, now)
        out = self._schedule_changes(now)
        body = {
            "seq": self._next_seq(),
            "ts": epoch_ms(now),
            "armed": self.armed(now),
            "battery_v": self._battery_v,
            "mains": self._mains,
        }
        out.append(("heartbeat", msgspec.json.encode(body)))
        return out

    def _schedule_changes(self, now: datetime) -> list[Message]:
        """Zones whose schedule armed or disarmed them since the last report (reported at heartbeat time)."""
        armed = self.armed(now)
        out: list[Message] = []
        for zone, state in armed.items():
            if state != self._reported_armed.get(zone):
                source = "command" if zone in self._armed else "schedule"
                body = {"seq": self._next_seq(), "ts": epoch_ms(now), "zone": zone, "armed": state, "source": source}
                out.append(("arming", msgspec.json.encode(body)))
        self._reported_armed = armed
        return out

    def _event(self, now: datetime, event: str, cause: str, zone: str | None) -> Message:
        body: dict[str, Any] = {"seq": self._next_seq(), "ts": epoch_ms(now), "event": event, "cause": cause}
        if zone is not None:
            body["zone"] = zone
            body["armed"] = self.armed(now)[zone]
        return ("event", msgspec.json.encode(body))

    def act(self, action: str, args: Mapping[str, Any], now: datetime) -> list[Message]:
        if action in ("alarm", "restore"):
            cause = str(args.get("cause", "intrusion"))
            if cause not in CAUSES:
                raise ValueError(f"unknown fence cause {cause!r}; one of {', '.join(CAUSES)}")
            zone = args.get("zone")
            if cause in ZONE_CAUSES and zone is None:
                raise ValueError(f"cause {cause!r} needs a zone")
            if zone is not None and zone not in self._zones:
                raise ValueError(f"device {self.device.id!r} has no zone {zone!r}")
            return [self._event(now, action, cause, zone)]
        if action in ("arm", "disarm"):
            zone = str(args.get("zone", ""))
            if zone not in self._zones:
                raise ValueError(f"device {self.device.id!r} has no zone {zone!r}")
            self._armed[zone] = self._reported_armed[zone] = action == "arm"
            body = {"seq": self._next_seq(), "ts": epoch_ms(now), "zone": zone, "armed": action == "arm"}
            body["source"] = str(args.get("source", "command"))
            return [("arming", msgspec.json.encode(body))]
        if action in ("power_loss", "power_restore"):
            self._mains = action == "power_restore"
            return [self._event(now, "restore" if self._mains else "alarm", "power_loss", None)]
        if action == "battery":
            self._battery_v = float(args["volts"])
            low = self._battery_v < 11.5
            return [self._event(now, "alarm" if low else "restore", "low_battery", None)]
        raise ValueError(f"fence simulator has no action {action!r}; one of {', '.join(ACTIONS)}")

    def command(self, data: bytes, now: datetime) -> list[Message]:
        """Obey a hub command (``ingest.fence.command``): confirm each changed zone on ``arming``."""
        cmd = decode_command(data)  # DecodeError for a malformed command: the caller logs and drops it
        zones = [cmd.zone] if cmd.zone is not None else [z.id for z in self.device.zones if z.type != "tamper"]
        out: list[Message] = []
        for zone in zones:
            if zone not in self._zones or self._zones[zone].type == "tamper":
                continue
            self._armed[zone] = self._reported_armed[zone] = cmd.command == "arm"
            body = {
                "seq": self._next_seq(),
                "ts": epoch_ms(now),
                "zone": zone,
                "armed": cmd.command == "arm",
                "source": "command",
                "command_id": cmd.id,
            }
            out.append(("arming", msgspec.json.encode(body)))
        return out
