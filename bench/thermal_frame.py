"""Thermal frame decode + analysis cost, against a bare numpy baseline measured in the same run.

Baseline: ``numpy.frombuffer`` of the frame's pixels plus ``max()`` (the least any analysis must do).
Measured: ``ThermalDriver.decode`` of the same binary frame (header checks, scaling, range check, three
regions with stats, levels, fire rule with history), and of the JSON encoding of the same frame.

Run: .venv/bin/python bench/thermal_frame.py [--frames N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
from sharpeye.ingest.driver import Payload
from sharpeye.ingest.thermal import driver
from sharpeye.ingest.thermal.config import ThermalConfig
from sharpeye.ingest.thermal.frame import HEADER, encode_binary, encode_json


def per_call_us(fn: Callable[[int], object], n: int) -> float:
    fn(0)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    device = ThermalConfig.model_validate(
        {
            "id": "t1", "kind": "thermal", "name": "bench", "grid": "g", "width": 160, "height": 120,
            "rois": [
                {"id": "all", "name": "all", "pre_alarm_c": 60, "alarm_c": 100, "filter_s": 4, "fire": {}},
                {"id": "rect", "name": "rect", "rect": {"x0": 0.1, "y0": 0.3, "x1": 0.9, "y1": 1.0}, "alarm_c": 80},
                {"id": "poly", "name": "poly", "metric": "avg", "alarm_c": 50,
                 "polygon": [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.2}, {"x": 0.6, "y": 0.9}, {"x": 0.2, "y": 0.7}]},
            ],
        }
    )  # fmt: skip
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    frames = []
    for i in range(16):
        temps = (20 + rng.normal(0, 0.3, (120, 160))).astype(np.float32)
        temps[40:44, 100:104] = 30 + 5 * i
        ts = int((start + timedelta(seconds=i)).timestamp() * 1000)
        frames.append((encode_binary(temps, i, ts), encode_json(temps, i, ts)))
    n_pixels = 160 * 120

    def baseline(i: int) -> object:
        data = frames[i % 16][0]
        return np.frombuffer(data, dtype="<u2", count=n_pixels, offset=HEADER.size).max()

    state = driver.new_state(device)

    def binary(i: int) -> object:
        return driver.decode(device, Payload("t1", "frame", frames[i % 16][0], start), state)

    def json(i: int) -> object:
        return driver.decode(device, Payload("t1", "frame", frames[i % 16][1], start), state)

    base = per_call_us(baseline, args.frames)
    b = per_call_us(binary, args.frames)
    j = per_call_us(json, max(50, args.frames // 10))
    print(f"160x120 frame, 3 regions, {args.frames} frames")
    print(f"baseline frombuffer+max      {base:8.1f} us/frame")
    print(f"decode+analyse, binary       {b:8.1f} us/frame   ratio to baseline {b / base:6.1f}x")
    print(f"decode+analyse, JSON         {j:8.1f} us/frame   ratio to baseline {j / base:6.1f}x")


if __name__ == "__main__":
    main()
