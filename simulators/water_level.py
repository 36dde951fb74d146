"""Simulated water-level gauge (水位计): a slow random walk, scripted rises and falls."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sharpeye.ingest.driver import Message
from sharpeye.ingest.water_level.config import WaterLevelConfig
from sharpeye.simulators.clock import epoch_ms, following

ACTIONS = ("rise", "set")


class WaterLevelSimulator:
    """One gauge. Levels every ``level_s``, heartbeats every ``heartbeat_s``; ``rise`` ramps the level."""

    def __init__(self, device: WaterLevelConfig, *, seed: int, start: datetime) -> None:
        self.device = device
        self._rng = random.Random(seed)
        self._seq = 0
        span = device.warning_m - device.range_min_m
        self._level = device.range_min_m + span * self._rng.uniform(0.5, 0.8)
        self._ramp: tuple[datetime, float, datetime, float] | None = None
        self._next_level = start
        self._next_heartbeat = start + timedelta(seconds=device.heartbeat_s)

    @property
    def device_id(self) -> str:
        return self.device.id

    def next_tick(self) -> datetime:
        return min(self._next_level, self._next_heartbeat)

    def actions(self) -> Sequence[str]:
        return ACTIONS

    def level_at(self, now: datetime) -> float:
        if self._ramp is not None:
            t0, v0, t1, v1 = self._ramp
            if now >= t1:
                self._level, self._ramp = v1, None
            else:
                share = max(0.0, (now - t0) / (t1 - t0))
                return v0 + (v1 - v0) * share
        return self._level

    def _clamp(self, level: float) -> float:
        return min(self.device.range_max_m, max(self.device.range_min_m, level))

    def tick(self, now: datetime) -> list[Message]:
        out: list[Message] = []
        if now >= self._next_level:
            self._next_level = following(self._next_level, self.device.level_s, now)
            if self._ramp is None:
                self._level = self._clamp(self._level + self._rng.gauss(0, 0.005))
            self._seq += 1
            level = round(self.level_at(now), 3)
            out.append(("level", msgspec.json.encode({"seq": self._seq, "ts": epoch_ms(now), "level_m": level})))
        if now >= self._next_heartbeat:
            self._next_heartbeat = following(self._next_heartbeat, self.device.heartbeat_s, now)
            self._seq += 1
            out.append(("heartbeat", msgspec.json.encode({"seq": self._seq, "ts": epoch_ms(now), "battery_v": 3.6})))
        return out

    def act(self, action: str, args: Mapping[str, Any], now: datetime) -> list[Message]:
        if action == "rise":
            target = self._clamp(float(args["to_m"]))
            over = float(args.get("over_s", 60))
            self._ramp = (now, self.level_at(now), now + timedelta(seconds=over), target)
            return []
        if action == "set":
            self._ramp = None
            self._level = self._clamp(float(args["level_m"]))
            self._next_level = now
            return self.tick(now)
        raise ValueError(f"water_level simulator has no action {action!r}; one of {', '.join(ACTIONS)}")
