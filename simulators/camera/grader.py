"""``Grader``: compares the alarms a camera raised with a scenario's expected alarms.

An observed alarm is the first emission of one episode: (kind, channel, value, direction, scenario time).
It matches an expected alarm of the same kind, channel, value (and direction, if given) raised between
``at_s - early_s`` and ``at_s + within_s``. Unmatched observations are false positives, unmatched
expectations false negatives. ``offline`` runs the analytics straight on rendered frames (no codec).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import cv2
from sharpeye.ingest.camera.analyzer import Analyzer
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.simulators.camera.scenario import ExpectedAlarm, Scenario
from sharpeye.simulators.camera.scene import Scene


@dataclass(frozen=True)
class Observed:
    kind: str
    channel: str | None
    value: str
    t: float
    direction: str | None = None


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Grade:
    matched: list[tuple[ExpectedAlarm, Observed]]
    missed: list[ExpectedAlarm]
    extra: list[Observed]

    @property
    def exact(self) -> bool:
        return not self.missed and not self.extra

    def by_kind(self) -> dict[str, Tally]:
        out: dict[str, Tally] = defaultdict(Tally)
        for exp, obs in self.matched:
            out[exp.kind].tp += 1
            out[exp.kind].latencies.append(obs.t - exp.at_s)
        for exp in self.missed:
            out[exp.kind].fn += 1
        for obs in self.extra:
            out[obs.kind].fp += 1
        return dict(out)


class Grader:
    def __init__(self, early_s: float = 0.5) -> None:
        self.early_s = early_s

    def grade(self, expected: list[ExpectedAlarm], observed: list[Observed]) -> Grade:
        remaining = sorted(observed, key=lambda o: o.t)
        matched: list[tuple[ExpectedAlarm, Observed]] = []
        missed: list[ExpectedAlarm] = []
        for exp in sorted(expected, key=lambda e: e.at_s):
            hit = next(
                (
                    o
                    for o in remaining
                    if o.kind == exp.kind
                    and o.channel == exp.channel
                    and o.value == exp.value
                    and (exp.direction is None or o.direction == exp.direction)
                    and exp.at_s - self.early_s <= o.t <= exp.at_s + exp.within_s
                ),
                None,
            )
            if hit is None:
                missed.append(exp)
            else:
                remaining.remove(hit)
                matched.append((exp, hit))
        return Grade(matched=matched, missed=missed, extra=remaining)


def offline(scenario: Scenario, config: CameraConfig | None = None, duration_s: float | None = None) -> list[Observed]:
    """Run the analytics on the scenario's rendered frames at the camera's analysis rate and width."""
    cfg = config or scenario.camera_config()
    scene = Scene(scenario)
    analyzer = Analyzer(cfg)
    step = max(1, round(scenario.fps / cfg.analysis_fps))
    width = min(cfg.analysis_width, scene.width)
    height = max(2, round(scene.height * width / scene.width / 2) * 2)
    out: list[Observed] = []
    n_frames = round((duration_s or scenario.duration_s) * scenario.fps)
    for n in range(0, n_frames, step):
        t = n / scenario.fps
        if scenario.script_at(t) == "loss":
            continue
        small = cv2.resize(scene.frame(t), (width, height), interpolation=cv2.INTER_AREA)
        for e in analyzer.process(small, t):
            if e.repeat == 0:
                out.append(Observed(e.kind, e.channel, e.value, t, e.direction))
    return out
