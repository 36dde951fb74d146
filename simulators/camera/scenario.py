"""Scenario files (YAML) of the camera simulator: a scene, scripted actors and events, and expected alarms."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator
from sharpeye.config.base import StrictModel
from sharpeye.ingest.camera.config import CameraConfig

BUILTIN_DIR = Path(__file__).with_name("scenarios")


class Waypoint(StrictModel):
    """Where an actor's foot point is at a time."""

    t: float = Field(ge=0, description="Seconds from the start of the scenario.")
    x: float = Field(ge=-0.5, le=1.5, description="Foot point x, fraction of the width (may start off screen).")
    y: float = Field(ge=-0.5, le=1.5, description="Foot point y, fraction of the height.")


class Actor(StrictModel):
    """A person or a vehicle walking a scripted path (linear between waypoints, absent outside them)."""

    id: str = Field(min_length=1, description="Actor id, used in ground truth.")
    kind: Literal["person", "vehicle"] = Field(description="Shape drawn.")
    size: float = Field(default=0.2, gt=0, le=1, description="Height as a fraction of the frame height.")
    color: tuple[int, int, int] = Field(default=(40, 40, 200), description="BGR colour of the body.")
    path: list[Waypoint] = Field(min_length=2, description="Waypoints in time order.")

    @model_validator(mode="after")
    def _ordered(self) -> Actor:
        ts = [w.t for w in self.path]
        if ts != sorted(ts):
            raise ValueError("waypoints must be in time order")
        return self

    def foot(self, t: float) -> tuple[float, float] | None:
        p = self.path
        if t < p[0].t or t > p[-1].t:
            return None
        for a, b in itertools.pairwise(p):
            if a.t <= t <= b.t:
                f = 0.0 if b.t == a.t else (t - a.t) / (b.t - a.t)
                return (a.x + f * (b.x - a.x), a.y + f * (b.y - a.y))
        return None


class Foliage(StrictModel):
    """A bush swaying in the wind: motion that goes nowhere (a distractor)."""

    x: float = Field(ge=0, le=1, description="Centre x.")
    y: float = Field(ge=0, le=1, description="Centre y.")
    radius: float = Field(default=0.08, gt=0, le=0.5, description="Radius, fraction of the height.")
    amplitude: float = Field(default=0.02, ge=0, le=0.2, description="Sway, fraction of the width.")
    period_s: float = Field(default=1.5, gt=0, description="Sway period, seconds.")


class Script(StrictModel):
    """A scripted camera fault between two times."""

    type: Literal["cover", "defocus", "turn", "loss"] = Field(description="What happens to the picture.")
    start_s: float = Field(ge=0, description="Start, seconds.")
    end_s: float = Field(gt=0, description="End, seconds.")


class ExpectedAlarm(StrictModel):
    """An alarm the analytics must raise: first emission within [from_s, to_s] of scenario time."""

    kind: str = Field(description="Reading kind, e.g. video.intrusion.")
    channel: str | None = Field(default=None, description="Zone or line id (None for tamper).")
    value: str = Field(default="alarm", description="Reading value.")
    actor: str | None = Field(default=None, description="Actor that causes it (documentation and benchmarks).")
    direction: str | None = Field(default=None, description="Expected tripwire direction.")
    at_s: float = Field(ge=0, description="Ground-truth time the alarm condition becomes true.")
    within_s: float = Field(default=2.0, gt=0, description="Allowed delay after at_s.")


class Scenario(StrictModel):
    """A synthetic camera scene and what it must make the analytics say."""

    name: str = Field(min_length=1, description="Scenario name.")
    width: int = Field(default=640, ge=64, le=3840, description="Frame width.")
    height: int = Field(default=360, ge=48, le=2160, description="Frame height.")
    fps: int = Field(default=10, ge=1, le=60, description="Frames per second.")
    duration_s: float = Field(default=20, gt=0, description="Length, seconds.")
    seed: int = Field(default=1, description="Seed of the background and noise.")
    noise: float = Field(default=3.0, ge=0, le=50, description="Std dev of per-frame pixel noise.")
    lighting_drift: float = Field(default=0.05, ge=0, le=0.5, description="Relative brightness swing.")
    lighting_period_s: float = Field(default=30, gt=0, description="Period of the lighting swing.")
    actors: list[Actor] = Field(default=[], description="People and vehicles.")
    foliage: list[Foliage] = Field(default=[], description="Swaying distractors.")
    scripts: list[Script] = Field(default=[], description="Scripted faults.")
    camera: dict[str, Any] = Field(
        default={}, description="Analytics part of the camera config (zones, tripwires, tamper, …)."
    )
    expected: list[ExpectedAlarm] = Field(default=[], description="Alarms the scenario must raise, and no others.")

    def camera_config(self, device_id: str | None = None, url: str | None = None) -> CameraConfig:
        data: dict[str, Any] = {
            "id": device_id or self.name,
            "kind": "camera",
            "name": self.name,
            "grid": "g1",
            "url": url or f"synthetic:{self.name}",
        }
        data.update(self.camera)
        return CameraConfig.model_validate(data)

    def script_at(self, t: float) -> str | None:
        for s in self.scripts:
            if s.start_s <= t < s.end_s:
                return s.type
        return None


def load_scenario(path: Path) -> Scenario:
    with path.open(encoding="utf-8") as fh:
        return Scenario.model_validate(yaml.safe_load(fh))


def builtin(name: str) -> Scenario:
    """A scenario shipped in ``simulators/camera/scenarios/<name>.yaml``."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"bad scenario name {name!r}")
    path = BUILTIN_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))
        raise ValueError(f"no built-in scenario {name!r}; known: {known}")
    return load_scenario(path)
