"""GB/T 28181 control benchmark: what a PTZ command costs on top of the SIP MESSAGE that carries it.

The platform and ``GbControl`` run in this process with a simulated NVR (same loop, real UDP sockets on loopback).
Measured in the same run, one after the other, ``--commands`` times each:
- baseline: a bare ``MESSAGE`` round trip to the device (a Keepalive-shaped Notify body it answers 200 at once);
- PTZ: ``GbControl.ptz(channel, action, speed)``: owner lookup, PTZCmd encoding, DeviceControl body, the same
  MESSAGE round trip, the device decoding and applying the command to its head, the automatic-stop timer;
- presets: ``GbControl.presets(channel)``: a PresetQuery and the device's Response MESSAGE back.
Prints p50/p95 latency of each and the ratios to the baseline.

``python bench/gb28181_control.py --commands 500``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.control import GbControl
from sharpeye.ingest.gb28181.manscdp import build
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

PLATFORM_ID = "34020000002000000001"
ACTIONS = ("left", "stop", "right", "stop", "up", "stop", "zoom_in", "stop")


async def timed(n: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


async def main(commands: int) -> None:
    os.environ["BENCH_GB_PASSWORD"] = "bench-pw"
    nvr = SimDevice(id=code("34020000", 118, 1), password="bench-pw", kind="nvr", channel_count=16, keepalive_s=30)
    config = GbDeviceConfig.model_validate({"id": nvr.id, "kind": "gb28181", "name": "bench", "grid": "g1",
                                            "heartbeat_s": 30, "password": "${BENCH_GB_PASSWORD}"})  # fmt: skip
    settings = GbSettings(sip_id=PLATFORM_ID, port=0, sip_t1_s=0.5, query_timeout_s=5)
    platform = GbPlatform(settings, [config], lambda _readings: None)
    await platform.start()
    fleet = DeviceFleet([nvr], platform_id=PLATFORM_ID, platform_port=platform.port)
    await fleet.start()
    control = GbControl(platform, hold_s=3600)
    try:
        async with asyncio.timeout(20):
            while len(platform.channels()) < 16:  # noqa: ASYNC110 - the catalog arrives over SIP, polled with a deadline
                await asyncio.sleep(0.05)
        channels = [cid for cid, _ in nvr.channels]
        keepalive = build("Notify", "Keepalive", 1, nvr.id, [("Status", "OK")])
        for _ in range(20):  # warm up both paths
            await platform.send_message(nvr.id, keepalive)
            await control.ptz(channels[0], "stop")
        base = await timed(commands, lambda i: platform.send_message(nvr.id, keepalive))
        ptz = await timed(commands, lambda i: control.ptz(channels[i % 16], ACTIONS[i % len(ACTIONS)], 128))
        presets = await timed(max(1, commands // 5), lambda i: control.presets(channels[i % 16]))
        applied = sum(len(nvr.control.head(c).commands) for c in channels)
        b50, b95 = summary(base)
        p50, p95 = summary(ptz)
        q50, q95 = summary(presets)
        print(f"bare SIP MESSAGE round trip (baseline): p50 {b50:.2f} ms, p95 {b95:.2f} ms ({commands} sent)")
        print(f"PTZ command (GbControl.ptz):            p50 {p50:.2f} ms, p95 {p95:.2f} ms, "
              f"{p50 / b50:.2f}x / {p95 / b95:.2f}x the baseline; {applied - 20} applied by the device")  # fmt: skip
        print(f"PresetQuery with its Response:          p50 {q50:.2f} ms, p95 {q95:.2f} ms, "
              f"{q50 / b50:.2f}x the baseline ({len(presets)} queries)")  # fmt: skip
    finally:
        await control.stop()
        await fleet.stop()
        await platform.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.commands))
