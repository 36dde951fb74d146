"""CPU cost of one 720p H.264 25 fps camera in the analytics worker: decoding only vs decoding with analytics.

CPU time is steadier than a capacity count on a shared machine, so this measures, in one process, the CPU
seconds that the hub's own worker decoder (``CameraDecoder``) spends per second of stream, for both modes,
alternating ``--rounds`` times on the same packets (the same clip as ``bench/video_capacity.py``: the
intrusion scenario at 1280x720 25 fps, 2 Mbit/s). The decode-only figure is the baseline; the ratio
decode / analytics is the camera count the analytics mode can sustain relative to decoding only when the
worker's CPU is the limit. It then profiles one analytics pass (cProfile sees OpenCV's and PyAV's C calls)
and prints the cost of each step per analysed frame, and the cost of moving a packet to a worker (msgpack
and a pipe, in both modes alike).

    .venv/bin/python bench/video_costs.py                # 16 s clip, 5 rounds
    .venv/bin/python bench/video_costs.py --rounds 3 --seconds 10
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import av
import cv2
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.source import stream_info
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video


def load(path: Path) -> tuple[StreamInfo, list[VideoPacket]]:
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    info = stream_info(stream)
    packets = [
        VideoPacket(data=bytes(p), pts=p.pts, dts=p.dts, key=bool(p.is_keyframe), arrival=0.0)
        for p in container.demux(stream)
        if p.size
    ]
    container.close()
    return info, packets


def run(
    config: CameraConfig, info: StreamInfo, packets: list[VideoPacket], analytics: bool, cameras: int
) -> tuple[float, int]:
    """CPU seconds per camera to feed every packet through ``cameras`` fresh decoders, interleaved packet by
    packet as a worker process does (so their decoders and background models share the caches); and the
    number of events."""
    decs = [CameraDecoder(config.model_copy(update={"id": f"cam{i:02d}"}), info, analytics) for i in range(cameras)]
    events = 0
    t0 = time.process_time()
    for p in packets:
        for dec in decs:
            events += len(dec.feed(p))
    return (time.process_time() - t0) / cameras, events // cameras


def ipc_cost(packets: list[VideoPacket]) -> float:
    """CPU seconds per packet to msgpack-encode it, send it through a pipe and decode it on the other end."""
    enc = msgspec.msgpack.Encoder()
    dec = msgspec.msgpack.Decoder(VideoPacket)
    recv_end, send_end = Pipe(duplex=False)
    count = len(packets)

    def reader() -> None:
        for _ in range(count):
            dec.decode(recv_end.recv()[2])

    thread = threading.Thread(target=reader)
    t0 = time.process_time()
    thread.start()
    for p in packets:
        send_end.send(("pkt", "cam00", enc.encode(p)))
    thread.join()
    return (time.process_time() - t0) / count


STEPS = {
    "scale to analysis size": ("reformat", "to_ndarray"),
    "MOG2": ("apply",),
    "brightness, mean": ("mean", "convertScaleAbs"),
    "mask and morphology": ("threshold", "bitwise_and", "morphologyEx", "dilate", "countNonZero"),
    "contours": ("findContours", "boundingRect"),
}


def _callee(name: str) -> str:
    """The bare name of a profiled C function: ``<method 'apply' of '…' objects>`` or ``<cvtColor>``."""
    if name.startswith("<method '"):
        return name.split("'")[1]
    return name.strip("<>").split(".")[-1].split(" ")[-1]


def profile(config: CameraConfig, info: StreamInfo, packets: list[VideoPacket]) -> None:
    dec = CameraDecoder(config, info, True)
    prof = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
    prof.enable()
    for p in packets:
        dec.feed(p)
    prof.disable()
    stats: Any = pstats.Stats(prof)
    rows: dict[str, float] = dict.fromkeys(STEPS, 0.0)
    decode = tamper = evidence = analyse = 0.0
    for (file, _line, name), (_cc, _nc, tt, ct, _callers) in stats.stats.items():
        callee = _callee(name) if file == "~" else name
        if callee == "decode" and file == "~":
            decode += tt
        elif file.endswith("tamper.py") and name == "update":
            tamper += ct
        elif file.endswith("analyzer.py") and name == "process":
            analyse += ct
        elif file.endswith("worker.py") and name in ("annotate", "_bgr"):
            evidence += ct
        elif callee == "imencode":
            evidence += tt
        for step, names in STEPS.items():
            if file == "~" and callee in names:
                rows[step] += tt
    frames, analysed = dec.decoded, dec.analysed
    print(f"profile of one camera ({frames} frames decoded, {analysed} analysed; cProfile timing CPU):")
    print(f"  {'decode (h264)':26s} {decode / frames * 1e3:6.2f} ms per decoded frame")
    rows["tamper (at its check rate)"] = tamper
    rows["evidence JPEG (per alarm)"] = evidence
    for step, sec in rows.items():
        print(f"  {step:26s} {sec / analysed * 1e3:6.2f} ms per analysed frame")
    rest = analyse - sum(v for k, v in rows.items() if k not in ("scale to analysis size", "evidence JPEG (per alarm)"))
    print(f"  {'rest of the analyser':26s} {rest / analysed * 1e3:6.2f} ms per analysed frame (tracker, rules, Python)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating passes per mode")
    parser.add_argument("--seconds", type=float, default=16.0, help="clip length")
    parser.add_argument("--width", type=int, default=None, help="analysis width (default: the camera default)")
    parser.add_argument(
        "--cameras", type=int, default=6, help="cameras decoded in turn by the one process (a worker's share)"
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    tmp = Path(tempfile.mkdtemp(prefix="sharpeye-costs-"))
    scenario = builtin("intrusion")
    zones = [{**z, "dwell_s": 0.0} for z in scenario.camera["zones"]]
    scenario = scenario.model_copy(update={"camera": {**scenario.camera, "zones": zones}})
    clip = write_video(
        scenario,
        tmp / "cam720.ts",
        width=1280,
        height=720,
        fps=25,
        duration_s=args.seconds,
        gop_s=2.0,
        preset="veryfast",
        bitrate=2_000_000,
    )
    info, packets = load(clip)
    config: CameraConfig = scenario.camera_config("cam00", str(clip))
    if args.width is not None:
        config = config.model_copy(update={"analysis_width": args.width})
    stream_s = len(packets) / 25
    print(
        f"clip: 1280x720 25 fps H.264, {stream_s:.0f} s, {len(packets)} packets, analysed at "
        f"{config.analysis_fps:g} fps, {config.analysis_width} px wide; load average {os.getloadavg()[0]:.1f}"
    )
    run(config, info, packets[:50], True, 1)  # warm caches and imports
    cpu: dict[bool, list[float]] = {False: [], True: []}
    events = 0
    for _ in range(args.rounds):
        for analytics in (False, True):
            sec, n = run(config, info, packets, analytics, args.cameras)
            cpu[analytics].append(sec / stream_s)
            events = n if analytics else events
    dec, ana = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(
        f"CPU per camera, {args.cameras} cameras in one process (median of {args.rounds}): "
        f"decode only {dec * 1e3:.1f} ms/s (baseline, same run), "
        f"with analytics {ana * 1e3:.1f} ms/s (+{(ana - dec) * 1e3:.1f} ms/s, {events} events); "
        f"ratio {dec / ana:.2f} (goal >= 0.8); load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "  per round, decode only: "
        + " ".join(f"{c * 1e3:.1f}" for c in cpu[False])
        + "; analytics: "
        + " ".join(f"{c * 1e3:.1f}" for c in cpu[True])
    )
    print(f"packet to worker (msgpack + pipe, both modes): {ipc_cost(packets) * 1e6:.0f} µs per packet")
    profile(config, info, packets)


if __name__ == "__main__":
    main()
