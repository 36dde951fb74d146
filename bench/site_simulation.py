"""Simulator capacity: simulated seconds per CPU second for a large site, with a baseline from the same run.

Site: N fence controllers (heartbeat 10 s), M thermal cameras at 160x120 (one binary frame per second, a person
and a fire in view) and K water gauges (level every 10 s). Baseline: encoding the same number of messages as a
fence heartbeat with msgspec (the least a simulator must do per message). No broker: this measures the
simulator, not the network.

Run: .venv/bin/python bench/site_simulation.py [--fences 300] [--thermal 50] [--gauges 100] [--seconds 60]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from sharpeye.config.loader import demo_path, parse_yaml, validate
from sharpeye.ingest.registry import installed
from sharpeye.simulators.scenario import Scenario, Step
from sharpeye.simulators.site import SiteSimulation


def site_data(fences: int, thermal: int, gauges: int) -> dict[str, Any]:
    data, _ = parse_yaml(demo_path().read_text(encoding="utf-8"))
    devices: list[dict[str, Any]] = []
    for i in range(fences):
        devices.append(
            {
                "id": f"f{i}",
                "kind": "fence",
                "name": "f",
                "grid": "hedong-g1",
                "heartbeat_s": 10,
                "zones": [{"id": "z1", "name": "z"}, {"id": "t", "name": "t", "type": "tamper"}],
            }
        )
    for i in range(thermal):
        devices.append(
            {
                "id": f"t{i}",
                "kind": "thermal",
                "name": "t",
                "grid": "hedong-g1",
                "frame_s": 1,
                "rois": [{"id": "all", "name": "all", "alarm_c": 100, "fire": {}}],
            }
        )
    for i in range(gauges):
        devices.append(
            {"id": f"w{i}", "kind": "water_level", "name": "w", "grid": "hedong-g1", "level_s": 10, "warning_m": 12.5}
        )
    data["devices"] = devices
    data["rules"] = []
    return data  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fences", type=int, default=300)
    parser.add_argument("--thermal", type=int, default=50)
    parser.add_argument("--gauges", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    site = validate(site_data(args.fences, args.thermal, args.gauges), installed())
    steps = []
    for i in range(args.thermal):
        steps.append(Step(at=1, device=f"t{i}", action="person", args={"for_s": 600}))
        steps.append(Step(at=5, device=f"t{i}", action="fire_start", args={}))
    simulation = SiteSimulation(site, Scenario(name="bench", steps=steps), start=datetime.now(UTC))

    cpu0 = time.process_time()
    messages = bytes_out = 0
    for tenth in range(args.seconds * 10 + 1):
        for _, data in simulation.advance(tenth / 10):
            messages += 1
            bytes_out += len(data)
    sim_cpu = time.process_time() - cpu0

    body = {"seq": 1, "ts": 1767578400000, "armed": {"z1": True, "t": True}, "battery_v": 13.2, "mains": True}
    cpu0 = time.process_time()
    for i in range(messages):
        body["seq"] = i
        msgspec.json.encode(body)
    base_cpu = time.process_time() - cpu0

    print(
        f"{args.fences} fences, {args.thermal} thermal 160x120 @1 fps, {args.gauges} gauges, {args.seconds} s simulated"
    )
    print(f"messages {messages} ({bytes_out / 1e6:.1f} MB)")
    print(f"simulation  {sim_cpu:7.3f} s CPU  -> {args.seconds / sim_cpu:7.1f} simulated s per CPU s")
    print(
        f"baseline    {base_cpu:7.3f} s CPU  (msgspec-encoding {messages} heartbeats)  ratio {sim_cpu / base_cpu:.0f}x"
    )


if __name__ == "__main__":
    main()
