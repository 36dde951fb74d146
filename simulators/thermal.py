"""Simulated thermal camera: a scene with ambient temperature, people at body temperature, and fires.

People (about 34–37 °C at the surface) walk through the scene and must never raise fire alarms; a fire
starts small and grows, its hottest point rising by ``rate_c_per_s``. Frames go out every ``frame_s``:
JSON for small sensors (up to 32x32), the binary encoding for larger ones (override with the
``encoding`` action). The camera can also report its own rule results (``result`` action).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import numpy as np
from sharpeye.ingest.driver import Message
from sharpeye.ingest.thermal.config import ThermalConfig
from sharpeye.ingest.thermal.frame import Temps, encode_binary, encode_json
from sharpeye.simulators.clock import epoch_ms, following

ACTIONS = ("person", "fire_start", "fire_out", "ambient", "encoding", "result")
BODY_C = 36.0
MAX_FIRE_C = 650.0


@dataclass(slots=True)
class Person:
    x: float
    y: float
    vx: float  # frame widths per second
    vy: float
    until: datetime
    surface_c: float


@dataclass(slots=True)
class Fire:
    x: float
    y: float
    started: datetime
    rate_c_per_s: float
    growth_per_s: float  # radius growth, in frame widths per second


class ThermalScene:
    """Renders frames of a scene; pure given the time it is asked for (apart from sensor noise)."""

    def __init__(self, width: int, height: int, seed: int, ambient_c: float) -> None:
        self.width, self.height = width, height
        self.ambient_c = ambient_c
        self._rng = np.random.default_rng(seed)
        self._xx = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, :]
        self._yy = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
        self._aspect = np.float32(height / width)
        self.people: list[Person] = []
        self.fires: list[Fire] = []

    def render(self, now: datetime, dt_s: float) -> Temps:
        # Ambient with a vertical gradient (cooler sky at the top, warmer ground below) and sensor noise.
        temps: Temps = (self.ambient_c - 4.0 + 6.0 * self._yy + np.zeros_like(self._xx)).astype(np.float32)
        temps += self._rng.normal(0, 0.15, temps.shape).astype(np.float32)
        self.people = [p for p in self.people if p.until > now]
        for person in self.people:
            person.x = (person.x + person.vx * dt_s) % 1.0
            person.y = min(0.95, max(0.05, person.y + person.vy * dt_s))
            # An upright ellipse about 7% of the width wide and 20% of the height tall.
            inside = ((self._xx - person.x) / 0.035) ** 2 + ((self._yy - person.y) / 0.1) ** 2 <= 1.0
            np.putmask(temps, inside, np.float32(person.surface_c))
        for fire in self.fires:
            age = max(0.0, (now - fire.started).total_seconds())
            peak = min(MAX_FIRE_C, self.ambient_c + 8.0 + fire.rate_c_per_s * age)
            radius = 0.01 + fire.growth_per_s * age
            dist2 = (self._xx - fire.x) ** 2 + ((self._yy - fire.y) * self._aspect) ** 2
            heat = (peak - self.ambient_c) * np.exp(-dist2 / (radius * radius))
            np.maximum(temps, self.ambient_c + heat.astype(np.float32), out=temps)
        return temps


class ThermalSimulator:
    """One camera: frames every ``frame_s``, heartbeats every ``heartbeat_s``, scripted people and fires."""

    def __init__(self, device: ThermalConfig, *, seed: int, start: datetime) -> None:
        self.device = device
        rng = np.random.default_rng(seed)
        self.scene = ThermalScene(device.width, device.height, seed, ambient_c=float(rng.uniform(12, 24)))
        self.encoding = "json" if device.width * device.height <= 1024 else "binary"
        self._seq = 0
        self._next_frame = start
        self._last_frame = start
        self._next_heartbeat = start + timedelta(seconds=device.heartbeat_s)

    @property
    def device_id(self) -> str:
        return self.device.id

    def next_tick(self) -> datetime:
        return min(self._next_frame, self._next_heartbeat)

    def actions(self) -> Sequence[str]:
        return ACTIONS

    def frame(self, now: datetime) -> Message:
        temps = self.scene.render(now, (now - self._last_frame).total_seconds())
        self._last_frame = now
        self._seq += 1
        if self.encoding == "json":
            return ("frame", encode_json(temps, self._seq, epoch_ms(now)))
        return ("frame", encode_binary(temps, self._seq, epoch_ms(now)))

    def tick(self, now: datetime) -> list[Message]:
        out: list[Message] = []
        if now >= self._next_frame:
            self._next_frame = following(self._next_frame, self.device.frame_s, now)
            out.append(self.frame(now))
        if now >= self._next_heartbeat:
            self._next_heartbeat = following(self._next_heartbeat, self.device.heartbeat_s, now)
            self._seq += 1
            out.append(("heartbeat", msgspec.json.encode({"seq": self._seq, "ts": epoch_ms(now), "core_c": 41.5})))
        return out

    def act(self, action: str, args: Mapping[str, Any], now: datetime) -> list[Message]:
        if action == "person":
            self.scene.people.append(
                Person(
                    x=float(args.get("x", 0.1)),
                    y=float(args.get("y", 0.6)),
                    vx=float(args.get("vx", 0.05)),
                    vy=float(args.get("vy", 0.0)),
                    until=now + timedelta(seconds=float(args.get("for_s", 30))),
                    surface_c=float(args.get("surface_c", BODY_C)),
                )
            )
            return []
        if action == "fire_start":
            self.scene.fires.append(
                Fire(
                    x=float(args.get("x", 0.5)),
                    y=float(args.get("y", 0.5)),
                    started=now,
                    rate_c_per_s=float(args.get("rate_c_per_s", 2.0)),
                    growth_per_s=float(args.get("growth_per_s", 0.002)),
                )
            )
            return []
        if action == "fire_out":
            self.scene.fires.clear()
            return []
        if action == "ambient":
            self.scene.ambient_c = float(args["c"])
            return []
        if action == "encoding":
            if args.get("format") not in ("json", "binary"):
                raise ValueError("encoding needs format: json or binary")
            self.encoding = str(args["format"])
            return []
        if action == "result":
            self._seq += 1
            body = {"seq": self._seq, "ts": epoch_ms(now), **{k: args[k] for k in args}}
            return [("result", msgspec.json.encode(body))]
        raise ValueError(f"thermal simulator has no action {action!r}; one of {', '.join(ACTIONS)}")
