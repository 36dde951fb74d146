"""CPU per pulled GB/T 28181 channel against the same stream read over RTSP, and click-to-first-frame.

One H.264 clip (the intrusion scene, 1280x720 25 fps, 2 Mbit/s, MPEG-TS) is served two ways from child processes:
by the GStreamer RTSP simulator, and by the GB/T 28181 device simulator (a fleet of IPCs that stream the very same
access units as PS over RTP/UDP when INVITEd). In this process, N channels of each kind are read the way the hub
reads them, without decoding: RTSP through ``Capture`` (PyAV demux in a thread per camera), GB through the
platform and ``ChannelPuller`` (SIP INVITE, RTP receive and reorder, PS demux, fan-out as ``VideoPacket``s). The
CPU seconds this process spends per second of stream, per channel, are measured over a window for each kind, in
alternating order for ``--rounds`` rounds; the ratio GB / RTSP is the figure (goal ≤ 1.2).

Then click-to-first-frame: ``--clicks`` times, a channel not pulled yet is subscribed (INVITE, answer, ACK, first
RTP, first key frame demuxed and sized) and the time to its first packet is taken; p50 and p95 are printed.

    .venv/bin/python bench/gb28181_media.py                      # 4 channels, 10 s windows, 3 rounds
    .venv/bin/python bench/gb28181_media.py --channels 8 --window 15 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.ingest.transport.video.capture import Capture
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.simulators.camera.rtsp import RtspSimulator
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

PLATFORM_ID = "34020000002000000001"
PASSWORD = "bench-gb-pw-1"


def devices(count: int, clip: Path) -> list[SimDevice]:
    return [SimDevice(id=code("34020000", 132, i + 1), password=PASSWORD, media_file=str(clip)) for i in range(count)]


def fleet_process(count: int, clip: str, port: int, ready: Any) -> None:
    async def main() -> None:
        fleet = DeviceFleet(devices(count, Path(clip)), platform_id=PLATFORM_ID, platform_port=port, t1=0.2)
        await fleet.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


class Counter:
    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.lock = threading.Lock()

    def __call__(self, packet: VideoPacket) -> None:
        with self.lock:
            self.packets += 1
            self.bytes += len(packet.data)


async def measure_gb(
    puller: ChannelPuller, channels: list[str], window: float, warmup: float, profile: bool = False
) -> tuple[float, int]:
    counters = [Counter() for _ in channels]
    for channel, counter in zip(channels, counters, strict=True):
        await puller.hold(channel, counter, lambda _: None)
    await asyncio.sleep(warmup)
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    c0, t0, p0 = time.process_time(), time.monotonic(), sum(c.packets for c in counters)
    await asyncio.sleep(window)
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    packets = sum(c.packets for c in counters) - p0
    for channel, counter in zip(channels, counters, strict=True):
        puller.unhold(channel, counter)
    return cpu / wall / len(channels), packets


async def measure_rtsp(sim: RtspSimulator, n: int, window: float, warmup: float) -> tuple[float, int]:
    counter = Counter()
    captures = [
        Capture(
            CameraConfig(id=f"rtsp{i}", kind="camera", name="r", grid="g", url=sim.url("cam")),
            lambda _: None,
            counter,
            lambda reason, detail: print(f"rtsp error {reason} {detail}", flush=True),
        )
        for i in range(n)
    ]
    for capture in captures:
        capture.start()
    await asyncio.sleep(warmup)
    c0, t0, p0 = time.process_time(), time.monotonic(), counter.packets
    await asyncio.sleep(window)
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    packets = counter.packets - p0
    for capture in captures:
        capture.stop()
    for capture in captures:
        await asyncio.to_thread(capture.join, 10)
    return cpu / wall / n, packets


async def clicks(puller: ChannelPuller, channels: list[str], count: int) -> list[float]:
    out: list[float] = []
    for i in range(count):
        channel = channels[i % len(channels)]
        t0 = time.monotonic()
        sub = await puller.subscribe(channel)
        await sub.get()
        out.append(time.monotonic() - t0)
        sub.close()
        while puller.pulled:  # noqa: ASYNC110 - released (grace 0) before the next click, polled
            await asyncio.sleep(0.01)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="print where the GB path spends its CPU (once)")
    parser.add_argument("--clip-seconds", type=float, default=20.0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sharpeye-gbmedia-"))
    t0 = time.perf_counter()
    clip = write_video(
        builtin("intrusion"), tmp / "cam720.ts", width=1280, height=720, fps=25, duration_s=args.clip_seconds,
        gop_s=2.0, preset="veryfast", bitrate=2_000_000,
    )  # fmt: skip
    print(
        f"clip: 1280x720 25 fps H.264 2 Mbit/s, {args.clip_seconds:.0f} s, written in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    settings = GbSettings(sip_id=PLATFORM_ID, port=0, media_port_min=0, media_port_max=0, release_grace_s=0)
    sims = devices(args.channels, clip)
    password = {"password": "${BENCH_GB_PW}"}
    configs = [
        GbDeviceConfig.model_validate({"id": d.id, "kind": "gb28181", "name": d.name, "grid": "g", **password})
        for d in sims
    ]
    platform = GbPlatform(settings, configs, lambda _: None)
    await platform.start()
    ready = multiprocessing.get_context("fork").Event()
    fleet = multiprocessing.get_context("fork").Process(
        target=fleet_process, args=(args.channels, str(clip), platform.port, ready), daemon=True
    )
    fleet.start()
    sim = RtspSimulator({"cam": clip})
    sim.start()
    puller = ChannelPuller(platform, grace_s=0)
    try:
        ready.wait(20)
        deadline = time.monotonic() + 30
        while sum(len(platform.device(d.id).channels) for d in sims) < len(sims):
            if time.monotonic() > deadline:
                raise SystemExit("the simulated devices did not register")
            await asyncio.sleep(0.1)
        channels = [d.channels[0][0] for d in sims]
        gb: list[float] = []
        rtsp: list[float] = []
        for r in range(args.rounds):
            for kind in ("gb", "rtsp") if r % 2 == 0 else ("rtsp", "gb"):
                if kind == "gb":
                    profile = args.profile and r == 0
                    cpu, packets = await measure_gb(puller, channels, args.window, args.warmup, profile)
                    gb.append(cpu)
                else:
                    cpu, packets = await measure_rtsp(sim, args.channels, args.window, args.warmup)
                    rtsp.append(cpu)
                print(f"round {r + 1} {kind:4s}: {cpu:.2%} of a core per channel, {packets / args.window:.0f} "
                      f"packets/s in total, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
                await asyncio.sleep(1.0)
        g, s = statistics.median(gb), statistics.median(rtsp)
        print(
            f"\nCPU per channel, {args.channels} channels of 720p25 2 Mbit/s, receive + demux + fan-out, no decode "
            f"(median of {args.rounds}):\n  GB/T 28181 PS over RTP/UDP: {g:.2%} of a core\n"
            f"  RTSP (PyAV, same stream):   {s:.2%} of a core (baseline, same run)\n  ratio GB / RTSP: {g / s:.2f} "
            f"(goal <= 1.2)\n  channels held on one core at 70%: {0.7 / g:.0f}",
            flush=True,
        )
        times = sorted(await clicks(puller, channels, args.clicks))
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(
            f"click to first frame ({args.clicks} pulls: INVITE, answer, ACK, first RTP, key frame demuxed and sized):"
            f" p50 {statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms",
            flush=True,
        )
    finally:
        await puller.stop()
        sim.stop()
        fleet.terminate()
        fleet.join(5)
        await platform.stop()


if __name__ == "__main__":
    os.environ.setdefault("BENCH_GB_PW", PASSWORD)
    asyncio.run(main())
