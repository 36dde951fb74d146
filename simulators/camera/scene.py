"""Renders a ``Scenario`` frame by frame: textured background, lighting drift, noise, foliage, actors, faults."""

from __future__ import annotations

import cv2
import numpy as np
from sharpeye.simulators.camera.scenario import Scenario


def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 190, size=(max(2, height // 24), max(2, width // 24), 3), dtype=np.uint8)
    img: np.ndarray = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 8, size=(height, width, 1))
    img = np.clip(img.astype(np.float32) + fine, 0, 255).astype(np.uint8)
    # Structures with sharp edges: buildings, posts, a road, so focus and view changes are visible.
    for _ in range(14):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height // 2))
        w, h = int(rng.integers(width // 20, width // 5)), int(rng.integers(height // 10, height // 3))
        colour = tuple(int(c) for c in rng.integers(30, 230, size=3))
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), colour, -1)
        for k in range(3):
            yy = y0 + (k + 1) * h // 4
            cv2.line(img, (x0, yy), (x0 + w, yy), (20, 20, 20), 1)
    cv2.rectangle(img, (0, int(height * 0.55)), (width, int(height * 0.62)), (110, 110, 110), -1)
    return img


class Scene:
    """Frame generator of one scenario. ``frame(t)`` is deterministic for a given seed and time."""

    def __init__(self, scenario: Scenario, width: int | None = None, height: int | None = None) -> None:
        self.scenario = scenario
        self.width = width or scenario.width
        self.height = height or scenario.height
        self._bg = _background(self.width, self.height, scenario.seed)
        self._bg_turned = _background(self.width, self.height, scenario.seed + 1000)
        rng = np.random.default_rng(scenario.seed + 7)
        self._noise = [
            rng.normal(0, scenario.noise, size=(self.height, self.width, 1)).astype(np.int16) for _ in range(6)
        ]

    def frame(self, t: float) -> np.ndarray:
        sc = self.scenario
        fault = sc.script_at(t)
        if fault == "cover":
            covered = np.full((self.height, self.width, 3), 18, np.uint8)
            return self._add_noise(covered, t, scale=0.5)
        base = self._bg_turned if fault == "turn" else self._bg
        gain = 1.0 + sc.lighting_drift * float(np.sin(2 * np.pi * t / sc.lighting_period_s))
        img: np.ndarray = cv2.convertScaleAbs(base, alpha=gain)
        w, h = self.width, self.height
        for f in sc.foliage:
            dx = f.amplitude * np.sin(2 * np.pi * t / f.period_s)
            cx, cy, r = int((f.x + dx) * w), int(f.y * h), max(3, int(f.radius * h))
            for k, (ox, oy) in enumerate(((0, 0), (-0.6, 0.3), (0.6, 0.3), (0.0, -0.5))):
                cv2.ellipse(
                    img, (cx + int(ox * r), cy + int(oy * r)), (r, int(r * 0.7)), 0, 0, 360, (30, 110 + 20 * k, 40), -1
                )
        if fault != "turn":
            for actor in sc.actors:
                foot = actor.foot(t)
                if foot is None:
                    continue
                self._draw_actor(img, actor.kind, foot, actor.size, actor.color)
        if fault == "defocus":
            k = max(3, (w // 25) | 1)
            img = cv2.GaussianBlur(img, (k, k), 0)
        return self._add_noise(img, t)

    def _draw_actor(
        self, img: np.ndarray, kind: str, foot: tuple[float, float], size: float, color: tuple[int, int, int]
    ) -> None:
        w, h = self.width, self.height
        fx, fy = int(foot[0] * w), int(foot[1] * h)
        ph = max(6, int(size * h))
        if kind == "person":
            bw = max(3, int(ph * 0.32))
            head = max(2, int(ph * 0.11))
            cv2.rectangle(img, (fx - bw // 2, fy - ph + 2 * head), (fx + bw // 2, fy), color, -1)
            cv2.circle(img, (fx, fy - ph + head), head, (150, 180, 220), -1)
            cv2.line(img, (fx, fy - ph // 2), (fx, fy), (20, 20, 20), 1)
        else:
            vw = int(ph * 2.2)
            cv2.rectangle(img, (fx - vw // 2, fy - ph), (fx + vw // 2, fy - ph // 5), color, -1)
            cv2.rectangle(img, (fx - vw // 3, fy - ph), (fx + vw // 3, fy - int(ph * 0.65)), (200, 220, 230), -1)
            for wx in (fx - vw // 3, fx + vw // 3):
                cv2.circle(img, (wx, fy - ph // 5), max(2, ph // 5), (15, 15, 15), -1)

    def _add_noise(self, img: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        if self.scenario.noise <= 0:
            return img
        n = self._noise[int(t * self.scenario.fps) % len(self._noise)]
        if scale != 1.0:
            n = (n * scale).astype(np.int16)
        out: np.ndarray = np.clip(img.astype(np.int16) + n, 0, 255).astype(np.uint8)
        return out

    def truth(self, t: float) -> dict[str, tuple[float, float]]:
        """Foot point of every actor visible at ``t`` (ground truth)."""
        if self.scenario.script_at(t) in ("turn", "cover"):
            return {}
        out: dict[str, tuple[float, float]] = {}
        for actor in self.scenario.actors:
            foot = actor.foot(t)
            if foot is not None and 0 <= foot[0] <= 1 and 0 <= foot[1] <= 1:
                out[actor.id] = foot
        return out
